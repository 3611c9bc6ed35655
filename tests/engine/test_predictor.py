"""The Predictor API on the tiny model: batching, coordinates, chunking, prompts, inputs, errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn_benchmark.engine.predictor import Detections, Predictor, load_image

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
CLASSES = ["red square", "blue circle", "green triangle"]


def tiny_cfg(tokenizer_dir, *opts):
    from maskrcnn_benchmark.config import load_config

    if not TINY.is_file():
        pytest.skip(f"{TINY} is absent")
    # A random-initialised model scores every token near the 0.01 prior: INFERENCE_TH 0 keeps candidates.
    return load_config(str(TINY), ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(tokenizer_dir),
                                   "MODEL.ATSS.INFERENCE_TH", "0.0", *opts])


@pytest.fixture(scope="module")
def predictor(bpe_tokenizer_dir):
    torch.manual_seed(0)
    return Predictor(tiny_cfg(bpe_tokenizer_dir), device="cpu", batch_size=4)


def scene(seed, size):
    from maskrcnn_benchmark.data.synthetic import SHAPE_CLASSES, draw_scene

    image, _ = draw_scene(np.random.default_rng(seed), SHAPE_CLASSES[:3], 3, size=size)
    return image


SIZES = [(160, 128), (128, 100), (200, 140)]  # (width, height): three different padded sizes


def _assert_same(a: Detections, b: Detections, atol=1e-4):
    assert len(a) == len(b) > 0
    torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=atol)
    torch.testing.assert_close(a.boxes, b.boxes, rtol=0, atol=atol * 100)
    assert torch.equal(a.labels, b.labels) and a.names == b.names


@pytest.mark.parametrize("pad_mode", ["exact", "canvas"])
def test_batch_of_three_sizes_equals_one_by_one(predictor, pad_mode):
    images = [scene(i, size) for i, size in enumerate(SIZES)] + [scene(9, (170, 120))]
    pred = Predictor(predictor.cfg, model=predictor.model, device="cpu", pad_mode=pad_mode, batch_size=4,
                     canvas_size=(128, 192))  # every resized test image fits
    passes = pred._batches([pred.transforms(image, None)[0] for image in images])
    # exact: images 1-3 resize to 128 x 163/182/181 and pad to 128 x 192 (one pass), image 0 to 128 x 160.
    assert passes == ([[0], [1, 2, 3]] if pad_mode == "exact" else [[0, 1, 2, 3]])
    batched = pred.predict(images, CLASSES)
    for image, got in zip(images, batched):
        _assert_same(got, pred.predict(image, CLASSES))


def test_batch_pad_mode_same_size_exact_and_mixed_sizes_close(predictor):
    pred = Predictor(predictor.cfg, model=predictor.model, device="cpu", pad_mode="batch", batch_size=4)
    same = [scene(10 + i, (160, 128)) for i in range(2)]
    for image, got in zip(same, pred.predict(same, CLASSES)):
        _assert_same(got, pred.predict(image, CLASSES))
    # Mixed sizes share the batch's padding: scores move a little (no padding mask in FIBER), not a lot.
    mixed = [scene(i, size) for i, size in enumerate(SIZES)]
    for image, got in zip(mixed, pred.predict(mixed, CLASSES)):
        alone = pred.predict(image, CLASSES)
        torch.testing.assert_close(got.scores[:20], alone.scores[:20], rtol=0, atol=5e-3)
    with pytest.raises(ValueError, match="pad_mode"):
        Predictor(predictor.cfg, model=predictor.model, device="cpu", pad_mode="none")


def test_boxes_map_back_to_original_coordinates(predictor):
    big = scene(3, (320, 256))
    small = big.resize((160, 128), Image.BILINEAR)  # what the test transform (MIN_SIZE_TEST 128) does to `big`
    assert torch.equal(predictor.transforms(big, None)[0], predictor.transforms(small, None)[0])
    det_big, det_small = predictor.predict([big, small], CLASSES)
    assert det_big.image_size == (320, 256) and det_small.image_size == (160, 128)
    assert len(det_big) == len(det_small) > 10
    torch.testing.assert_close(det_big.scores, det_small.scores, rtol=0, atol=1e-6)
    torch.testing.assert_close(det_big.boxes, det_small.boxes * 2, rtol=0, atol=1e-3)
    assert det_big.boxes[:, 2].max() > 160 or det_big.boxes[:, 3].max() > 128  # really in the big frame
    assert (det_big.boxes[:, 0] >= 0).all() and (det_big.boxes[:, 2] <= 320).all()


def test_long_class_list_is_chunked_and_every_class_can_appear(bpe_tokenizer_dir):
    names = [f"shape number {i} of the long list" for i in range(40)]  # ~9 tokens each, MAX_QUERY_LEN 128
    cfg = tiny_cfg(bpe_tokenizer_dir, "MODEL.ATSS.DETECTIONS_PER_IMG", "2000", "MODEL.ATSS.PRE_NMS_TOP_N", "2000")
    torch.manual_seed(0)
    pred = Predictor(cfg, device="cpu")
    prompts = pred.detection_prompts(names)
    assert len(prompts) > 1
    assert sorted(label for p in prompts for label in p.token_map) == list(range(1, 41))
    dets = pred.predict(scene(5, (128, 128)), names)
    assert set(dets.labels.tolist()) == set(range(1, 41))
    for label, name in zip(dets.labels.tolist(), dets.names):
        assert name == names[label - 1]
    assert (dets.scores[:-1] >= dets.scores[1:]).all()
    # The image prefix computed once for all chunks gives the same detections as full passes per chunk.
    plain = Predictor(cfg, model=pred.model, device="cpu", reuse_prefix=False)
    images = [scene(5, (128, 128)), scene(6, (128, 128))]
    for a, b in zip(pred.predict(images, names), plain.predict(images, names)):
        _assert_same(a, b, atol=1e-5)


def test_config_path_and_opts(predictor, bpe_tokenizer_dir):
    pred = Predictor(str(TINY), model=predictor.model, device="cpu",
                     opts=["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(bpe_tokenizer_dir),
                           "TEST.CHUNKED_EVALUATION", "2"])
    assert pred.cfg.TEST.CHUNKED_EVALUATION == 2 and len(pred.detection_prompts(CLASSES)) == 2
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        Predictor("configs/nope.yaml")


def test_grounding_prompts(predictor):
    caption = "a red square. the blue circle, and a green triangle"
    prompt = predictor.grounding_prompt(caption)
    assert prompt.names == {1: "a red square", 2: "the blue circle", 3: "and a green triangle"}
    by_phrase = predictor.grounding_prompt(caption, phrases=["red square", "blue circle"])
    assert by_phrase.names == {1: "red square", 2: "blue circle"}
    by_span = predictor.grounding_prompt(caption, spans=[(2, 12), [(18, 29)]])
    assert by_span.names == {1: "red square", 2: "blue circle"}
    assert by_span.token_map == by_phrase.token_map
    dets = predictor.predict(scene(1, (160, 128)), caption, phrases=["red square", "blue circle"], threshold=0.0)
    assert len(dets) > 0 and set(dets.names) <= {"red square", "blue circle"}


def test_input_types_give_the_same_result(predictor, tmp_path):
    image = scene(7, (150, 120))
    path = tmp_path / "x.png"
    image.save(path)
    rgb = np.asarray(image)
    from_path = predictor.predict(str(path), CLASSES)
    _assert_same(predictor.predict(image, CLASSES), from_path, atol=1e-6)
    _assert_same(predictor.predict(rgb[:, :, ::-1].copy(), CLASSES), from_path, atol=1e-6)  # BGR default
    _assert_same(predictor.predict(rgb, CLASSES, rgb=True), from_path, atol=1e-6)
    assert from_path.source == str(path)


def test_threshold_and_conversions(predictor):
    dets = predictor.predict(scene(2, (160, 128)), CLASSES)
    cut = float(dets.scores[4])
    kept = predictor.predict(scene(2, (160, 128)), CLASSES, threshold=cut)
    assert len(kept) >= 5 and (kept.scores >= cut).all() and len(kept) < len(dets)
    boxlist = kept.to_boxlist()
    assert boxlist.size == (160, 128) and torch.equal(boxlist.get_field("labels"), kept.labels)
    records = kept.to_coco_json(image_id=42, category_ids={1: 11, 2: 12, 3: 13})
    x1, y1, x2, y2 = kept.boxes[0].tolist()
    assert records[0]["image_id"] == 42 and records[0]["category_id"] == 10 + int(kept.labels[0])
    assert records[0]["bbox"] == pytest.approx([x1, y1, x2 - x1 + 1, y2 - y1 + 1], abs=1e-3)
    assert records[0]["name"] == kept.names[0] and records[0]["score"] == pytest.approx(float(kept.scores[0]), abs=1e-5)
    with pytest.raises(ValueError, match="no COCO category id for label"):
        kept.to_coco_json(image_id=42, category_ids={})
    as_dict = kept.to_dict()
    assert as_dict["width"] == 160 and len(as_dict["detections"]) == len(kept)


def test_moved_helpers_stay_importable_from_here():
    """Scripts written against the first Predictor import these names from engine.predictor."""
    from maskrcnn_benchmark.data import prompts
    from maskrcnn_benchmark.engine import predictor as module
    from maskrcnn_benchmark.utils import visualizer

    assert module.draw_detections is visualizer.draw_detections
    assert module.color_for_label is visualizer.color_for_label
    assert module.split_caption_into_phrases is prompts.split_caption_into_phrases
    assert module.Prompt is prompts.Prompt


def test_bad_inputs(predictor, tmp_path, bpe_tokenizer_dir):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        predictor.predict(str(bad), CLASSES)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        predictor.predict(str(tmp_path / "missing.jpg"), CLASSES)
    image = scene(0, (128, 128))
    with pytest.raises(ValueError, match="empty"):
        predictor.predict(image, [])
    with pytest.raises(ValueError, match="empty"):
        predictor.predict(image, ["red square", "  "])
    with pytest.raises(ValueError, match="empty"):
        predictor.predict(image, "   ")
    with pytest.raises(ValueError, match="does not occur"):
        predictor.predict(image, "a red square", phrases=["blue"])
    with pytest.raises(ValueError, match="image arrays must be"):
        load_image(np.zeros((8, 8, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="unsupported image type"):
        load_image(12)
    with pytest.raises(ValueError, match=f"{tmp_path} is a directory"):
        predictor.predict(str(tmp_path), CLASSES)


@pytest.mark.parametrize("shape", [(3, 2000, 3), (2000, 3, 3), (1, 500, 3), (500, 1), (1, 5000, 3)])
def test_extreme_shapes_resize_to_at_least_one_pixel(predictor, shape):
    # MAX_SIZE_TEST 224 used to round the short side of these to 0 pixels ("height and width must be > 0").
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    tensor = predictor.transforms(load_image(image)[0], None)[0]
    assert min(tensor.shape[1:]) >= 1 and max(tensor.shape[1:]) <= 224
    detections = predictor.predict(image, CLASSES, threshold=0.0)
    height, width = shape[:2]
    assert detections.image_size == (width, height)
    assert len(detections) > 0 and torch.isfinite(detections.scores).all()


def test_images_without_pixels_are_refused_by_name(predictor):
    with pytest.raises(ValueError, match="image array: the image has no pixels"):
        predictor.predict(np.zeros((0, 0, 3), dtype=np.uint8), CLASSES)
    with pytest.raises(ValueError, match="has no pixels"):
        predictor.predict(np.zeros((0, 10, 3), dtype=np.uint8), CLASSES)


def test_load_image_is_the_data_level_reader():
    from maskrcnn_benchmark.data import image_io

    assert load_image is image_io.load_image


def test_weights_round_trip_and_other_config_rejected(predictor, tmp_path, bpe_tokenizer_dir):
    from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer

    path = DetectronCheckpointer(None, predictor.model, save_dir=str(tmp_path)).save("model_final")
    torch.manual_seed(123)
    reloaded = Predictor(predictor.cfg, weight=path, device="cpu")
    image = scene(4, (160, 128))
    _assert_same(reloaded.predict(image, CLASSES), predictor.predict(image, CLASSES), atol=1e-6)
    # A checkpoint of another config: a clear error naming the file and the mismatch.
    other = tiny_cfg(bpe_tokenizer_dir, "MODEL.BACKBONE.OUT_CHANNELS", "16", "MODEL.DYHEAD.CHANNELS", "16",
                     "MODEL.GROUP_NORM.NUM_GROUPS", "4")
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    other_path = DetectronCheckpointer(None, build_detection_model(other), save_dir=str(tmp_path / "o")).save("m")
    with pytest.raises(ValueError, match="does not fit this config") as info:
        Predictor(predictor.cfg, weight=other_path, device="cpu")
    assert other_path in str(info.value) and "differ in shape" in str(info.value)
    # A RoBERTa-only (or coarse-stage) file fits but leaves the detector random: refused for inference.
    text_only = {k[len("fusion_backbone.language_backbone.body.model."):]: v
                 for k, v in predictor.model.state_dict().items()
                 if k.startswith("fusion_backbone.language_backbone.body.model.") and "t2i" not in k}
    text_path = tmp_path / "roberta.bin"
    torch.save(text_only, text_path)
    with pytest.raises(ValueError, match="'roberta' checkpoint"):
        Predictor(predictor.cfg, weight=str(text_path), device="cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_close_to_cpu_fp32(predictor, tmp_path):
    import copy

    from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer

    images = [scene(i, size) for i, size in enumerate(SIZES)]
    cpu = Predictor(predictor.cfg, model=copy.deepcopy(predictor.model), device="cpu", pad_mode="canvas")
    path = DetectronCheckpointer(None, cpu.model, save_dir=str(tmp_path)).save("m")
    gpu = Predictor(predictor.cfg, weight=path, device="cuda", pad_mode="canvas")  # weights loaded onto the GPU
    assert gpu.amp and next(gpu.model.parameters()).is_cuda
    for a, b in zip(gpu.predict(images, CLASSES), cpu.predict(images, CLASSES)):
        assert a.boxes.device.type == "cpu" and len(a) == len(b) > 0
        torch.testing.assert_close(a.scores[:20], b.scores[:20], rtol=0, atol=3e-3)
    fp32 = Predictor(predictor.cfg, weight=path, device="cuda", amp=False, pad_mode="canvas")
    for a, b in zip(fp32.predict(images, CLASSES), cpu.predict(images, CLASSES)):
        torch.testing.assert_close(a.scores[:20], b.scores[:20], rtol=0, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_chunked_prompts_with_prefix_reuse(predictor):
    import copy

    names = [f"shape number {i} of the long list" for i in range(30)]
    model = copy.deepcopy(predictor.model)
    images = [scene(i, (128, 128)) for i in range(3)]
    for amp in (False, True):
        reuse = Predictor(predictor.cfg, model=model, device="cuda", amp=amp)
        plain = Predictor(predictor.cfg, model=model, device="cuda", amp=amp, reuse_prefix=False)
        assert len(reuse.detection_prompts(names)) > 1
        for a, b in zip(reuse.predict(images, names), plain.predict(images, names)):
            assert len(a) == len(b) > 0
            torch.testing.assert_close(a.scores[:20], b.scores[:20], rtol=0, atol=1e-5 if not amp else 2e-3)
