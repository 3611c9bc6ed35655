"""The one image reader: every PIL mode and OpenCV layout becomes the right 8-bit RGB, bad images name themselves."""

import io

import numpy as np
import pytest
from PIL import Image

from maskrcnn_benchmark.data.image_io import (
    ImageReadError,
    array_to_rgb,
    decode_image_bytes,
    load_image,
    pil_to_rgb,
    read_image,
)

# A 2 x 3 gray ramp at 8 bits and the same ramp at 16 bits (v * 257), so the expected 8-bit result is exact.
RAMP8 = np.array([[0, 51, 102], [153, 204, 255]], dtype=np.uint8)
RAMP16 = RAMP8.astype(np.uint16) * 257


def _gray(image: Image.Image) -> np.ndarray:
    array = np.asarray(image)
    assert image.mode == "RGB" and array.shape[2] == 3
    assert (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()
    return array[..., 0]


def _mode_images():
    """(mode, PIL image, expected RGB array) for every mode the issue lists."""
    rgb = np.stack([RAMP8, 255 - RAMP8, np.full_like(RAMP8, 7)], axis=-1)
    gray3 = np.repeat(RAMP8[..., None], 3, axis=2)
    bits = np.array([[0, 1, 0], [1, 1, 0]], dtype=bool)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    rgba = np.concatenate([rgb, np.array([[0, 10, 20], [255, 128, 1]], dtype=np.uint8)[..., None]], axis=-1)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    return [
        ("1", Image.fromarray(bits).convert("1"), np.repeat((bits * 255).astype(np.uint8)[..., None], 3, axis=2)),
        ("L", Image.fromarray(RAMP8, mode="L"), gray3),
        ("P", palette, np.asarray(palette.convert("RGB"))),
        ("RGBA", Image.fromarray(rgba, mode="RGBA"), rgb),  # alpha dropped, colours kept
        ("CMYK", cmyk, np.asarray(cmyk.convert("RGB"))),
        ("I;16", Image.fromarray(RAMP16), gray3),
        ("I", Image.fromarray(RAMP16.astype(np.int32)), gray3),  # older Pillow's 16-bit PNG mode
        ("F", Image.fromarray(RAMP8.astype(np.float32) / 255), gray3),
    ]


@pytest.mark.parametrize("mode,image,expected", _mode_images(), ids=[m for m, _, _ in _mode_images()])
def test_every_pil_mode_becomes_the_right_rgb(mode, image, expected, tmp_path):
    assert image.mode == mode
    np.testing.assert_array_equal(np.asarray(pil_to_rgb(image)), expected)
    np.testing.assert_array_equal(np.asarray(load_image(image)[0]), expected)
    # The same through a file, in a format that stores the mode.
    path = tmp_path / ("image.tiff" if mode in ("F", "I", "CMYK") else "image.png")
    image.save(path)
    assert Image.open(path).mode == mode
    np.testing.assert_array_equal(np.asarray(read_image(path)), expected)
    np.testing.assert_array_equal(np.asarray(decode_image_bytes(path.read_bytes(), "bytes")), expected)


def test_sixteen_bit_png_is_not_white(tmp_path):
    # The bug: convert("RGB") clips I;16 at 255, so a dark 16-bit image turned all white.
    dark = np.full((4, 4), 1000, dtype=np.uint16)
    dark[0, 0] = 65535
    path = tmp_path / "depth16.png"
    Image.fromarray(dark).save(path)
    assert Image.open(path).mode == "I;16"
    assert (np.asarray(Image.open(path).convert("RGB")) == 255).all()  # what PIL alone gives
    gray = _gray(read_image(path))
    assert gray[0, 0] == 255 and gray[1, 1] == round(1000 / 257)


def test_float_and_wide_integer_ranges():
    # 0..1 floats times 255; 0..255 floats as they are; others stretched min..max; NaN -> 0.
    np.testing.assert_array_equal(_gray(array_to_rgb(RAMP8.astype(np.float64) / 255)), RAMP8)
    np.testing.assert_array_equal(_gray(array_to_rgb(RAMP8.astype(np.float32))), RAMP8)
    np.testing.assert_array_equal(_gray(array_to_rgb(RAMP8.astype(np.float32) * 4 - 100)), RAMP8)
    with_nan = RAMP8.astype(np.float32) / 255
    with_nan[0, 1] = np.nan
    assert _gray(array_to_rgb(with_nan))[0, 1] == 0
    assert (_gray(array_to_rgb(np.full((2, 2), np.inf))) == 0).all()
    np.testing.assert_array_equal(_gray(array_to_rgb(RAMP8.astype(np.int64))), RAMP8)
    np.testing.assert_array_equal(_gray(array_to_rgb(RAMP16.astype(np.int32))), RAMP8)
    np.testing.assert_array_equal(_gray(array_to_rgb(RAMP8.astype(np.int32) * 1000 - 7)), RAMP8)
    np.testing.assert_array_equal(_gray(array_to_rgb(RAMP8 > 100)), (RAMP8 > 100) * 255)


def test_array_channel_orders_and_shapes():
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    assert tuple(np.asarray(load_image(bgr)[0])[0, 0]) == (0, 0, 200)
    assert tuple(np.asarray(load_image(bgr, rgb=True)[0])[0, 0]) == (200, 0, 0)
    bgra = np.concatenate([bgr, np.full((2, 2, 1), 9, np.uint8)], axis=-1)
    assert tuple(np.asarray(load_image(bgra)[0])[0, 0]) == (0, 0, 200)
    np.testing.assert_array_equal(_gray(load_image(RAMP8[..., None])[0]), RAMP8)
    for bad in (np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3, 1), np.uint8), np.zeros(5, np.uint8)):
        with pytest.raises(ImageReadError, match="image arrays must be"):
            load_image(bad)
    with pytest.raises(ImageReadError, match="unsupported pixel type"):
        load_image(np.zeros((2, 2), dtype=np.complex64))
    with pytest.raises(TypeError, match="unsupported image type"):
        load_image(12)


def test_opencv_sixteen_bit_and_four_channel_reads(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    # 16-bit colour PNG: OpenCV gives uint16 BGR; the reader scales it like the 8-bit reduction of the file.
    colour16 = rng.integers(0, 65536, size=(5, 7, 3), dtype=np.uint16)
    path16 = str(tmp_path / "colour16.png")
    assert cv2.imwrite(path16, colour16)
    array16 = cv2.imread(path16, cv2.IMREAD_UNCHANGED)
    assert array16.dtype == np.uint16 and array16.shape == (5, 7, 3)
    got = np.asarray(load_image(array16)[0]).astype(int)
    expected = np.rint(colour16[..., ::-1] / 257.0).astype(int)  # BGR -> RGB, 16-bit range
    np.testing.assert_array_equal(got, expected)
    # ... and PIL's own read of that file (8-bit reduction) agrees within one level.
    assert np.abs(np.asarray(read_image(path16)).astype(int) - expected).max() <= 1
    # 16-bit gray, OpenCV: uint16 H x W.
    gray_path = str(tmp_path / "gray16.png")
    assert cv2.imwrite(gray_path, RAMP16)
    np.testing.assert_array_equal(_gray(load_image(cv2.imread(gray_path, cv2.IMREAD_UNCHANGED))[0]), RAMP8)
    np.testing.assert_array_equal(_gray(read_image(gray_path)), RAMP8)
    # 4-channel PNG: OpenCV gives BGRA; alpha is dropped, the colours match the PIL read of the file.
    bgra = rng.integers(0, 256, size=(4, 6, 4), dtype=np.uint8)
    path4 = str(tmp_path / "alpha.png")
    assert cv2.imwrite(path4, bgra)
    array4 = cv2.imread(path4, cv2.IMREAD_UNCHANGED)
    assert array4.shape == (4, 6, 4)
    np.testing.assert_array_equal(np.asarray(load_image(array4)[0]), bgra[..., 2::-1])
    np.testing.assert_array_equal(np.asarray(read_image(path4)), bgra[..., 2::-1])


def test_bad_images_name_themselves(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match=f"{tmp_path} is a directory, not an image file"):
        load_image(str(tmp_path))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="ann.json: image 3: cannot read image .*empty.jpg"):
        read_image(empty, where="ann.json: image 3")
    truncated = tmp_path / "truncated.png"
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(buffer, format="PNG")
    truncated.write_bytes(buffer.getvalue()[:60])
    with pytest.raises(ImageReadError, match="truncated.png"):
        read_image(truncated)
    with pytest.raises(ImageReadError, match="row 4: cannot decode"):
        decode_image_bytes(b"\x00\x01not an image", "x.tsv: row 4")
    # The error is both a ValueError (tools report it in one line) and an OSError (what data sets raised).
    assert issubclass(ImageReadError, ValueError) and issubclass(ImageReadError, OSError)


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 10, 3), (10, 0), (0, 0)])
def test_images_without_pixels_are_refused(shape):
    with pytest.raises(ImageReadError, match="has no pixels"):
        load_image(np.zeros(shape, dtype=np.uint8))
    with pytest.raises(ImageReadError, match="PIL image: the image has no pixels"):
        load_image(Image.new("RGB", (shape[1], shape[0])))
