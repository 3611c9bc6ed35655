"""The web demo's request handling (engine/web_demo.py) on the tiny model, without a browser."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.engine.web_demo import MODES, TABLE_HEADERS, WebDemo, parse_class_list, parse_phrases

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
CLASSES = "red square, blue circle,\ngreen triangle"


@pytest.fixture(scope="module")
def predictor(bpe_tokenizer_dir):
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.engine.predictor import Predictor

    if not TINY.is_file():
        pytest.skip(f"{TINY} is absent")
    cfg = load_config(str(TINY), ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(bpe_tokenizer_dir),
                                  "MODEL.ATSS.INFERENCE_TH", "0.0"])
    torch.manual_seed(0)
    return Predictor(cfg, device="cpu", batch_size=1)


@pytest.fixture()
def demo(predictor, tmp_path):
    return WebDemo(predictor, threshold=0.0, max_classes=5, max_characters=400, output_dir=str(tmp_path))


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from maskrcnn_benchmark.data.synthetic import SHAPE_CLASSES, draw_scene

    image, _ = draw_scene(np.random.default_rng(4), SHAPE_CLASSES[:3], 3, size=(180, 140))
    path = tmp_path_factory.mktemp("web") / "scene.png"
    image.save(path)
    return str(path)


def test_parsers():
    assert parse_class_list(" red square,\nblue circle ,, \n") == ["red square", "blue circle"]
    assert parse_class_list("") == []
    assert parse_phrases("") == (None, None)
    assert parse_phrases(" red square | blue circle ") == (None, ["red square", "blue circle"])
    assert parse_phrases("2-12 | 18:29") == ([(2, 12), (18, 29)], None)
    with pytest.raises(ValueError, match="not both"):
        parse_phrases("2-12 | blue circle")


def test_class_list_request_matches_the_predictor(demo, predictor, image_file):
    from PIL import Image

    from maskrcnn_benchmark.utils.visualizer import draw_detections

    result = demo.run(image_file, MODES[0], CLASSES, threshold=0.05)
    expected = predictor.predict(image_file, ["red square", "blue circle", "green triangle"], threshold=0.05)
    assert result.ok and len(result.rows) == len(expected) > 0
    assert result.message.startswith(f"{len(expected)} detections with score >= 0.05")
    for row, box, score, label, name in zip(result.rows, expected.boxes.tolist(), expected.scores.tolist(),
                                            expected.labels.tolist(), expected.names):
        assert len(row) == len(TABLE_HEADERS) and row[1:3] == [name, label]
        assert row[3] == pytest.approx(score, abs=6e-4) and row[4:] == pytest.approx(box, abs=0.06)
    assert [row[0] for row in result.rows] == list(range(1, len(expected) + 1))
    drawn = draw_detections(Image.open(image_file).convert("RGB"), expected)
    assert np.array_equal(np.asarray(result.picture), np.asarray(drawn))
    record = json.loads(Path(result.json_path).read_text())
    assert record["prompt"] == {"classes": ["red square", "blue circle", "green triangle"]}
    assert record["threshold"] == 0.05 and record["source"] == "scene.png"
    assert (record["width"], record["height"]) == (180, 140) and len(record["detections"]) == len(expected)
    # Arrays from the page are RGB; a higher threshold keeps a subset.
    rgb = np.asarray(Image.open(image_file).convert("RGB"))
    again = demo.run(rgb, MODES[0], CLASSES, threshold=float(expected.scores[2]))
    assert 3 <= len(again.rows) < len(result.rows) and again.rows[0] == result.rows[0]


def test_caption_request_with_phrases_and_spans(demo, image_file):
    caption = "a red square and a blue circle"
    by_phrase = demo.run(image_file, MODES[1], caption=caption, phrases_text="red square | blue circle")
    by_span = demo.run(image_file, MODES[1], caption=caption, phrases_text="2-12 | 19-30")
    assert by_phrase.ok and by_span.ok and by_phrase.rows == by_span.rows
    assert {row[1] for row in by_phrase.rows} == {"red square", "blue circle"}
    assert json.loads(Path(by_span.json_path).read_text())["prompt"]["spans"] == [[2, 12], [19, 30]]
    default = demo.run(image_file, MODES[1], caption="a red square. a blue circle")
    assert {row[1] for row in default.rows} == {"a red square", "a blue circle"}


@pytest.mark.parametrize("args,message", [
    ((None, MODES[0], CLASSES), "no image"),
    (("MISSING", MODES[0], CLASSES), "not found"),
    (("NOTES", MODES[0], CLASSES), "cannot read image"),
    (("IMAGE", MODES[0], " , \n "), "the class list is empty"),
    (("IMAGE", MODES[0], "a, b, c, d, e, f"), "too long: 6 names, at most 5"),
    (("IMAGE", MODES[1], "", "   "), "the caption is empty"),
    (("IMAGE", MODES[1], "", "x" * 401), "too long: 401 characters"),
    (("IMAGE", MODES[1], "", "x," * 150), "more than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN=128"),
    (("IMAGE", MODES[1], "", "a red square", "blue"), "does not occur"),
    (("IMAGE", "boxes", CLASSES), "unknown prompt kind"),
])
def test_bad_requests_give_one_line_messages(demo, image_file, tmp_path, args, message):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    replace = {"IMAGE": image_file, "MISSING": str(tmp_path / "missing.png"), "NOTES": str(notes)}
    args = (replace.get(args[0], args[0]),) + args[1:]
    result = demo.run(*args)
    assert not result.ok and result.picture is None and result.rows == [] and result.json_path is None
    assert result.message.startswith("Error: ") and message in result.message and "\n" not in result.message
    picture, rows, path, status = demo.handle(*args, *([""] * (5 - len(args))), 0.5)
    assert (picture, rows, path) == (None, [], None) and status == f"**{result.message}**"


def test_threshold_outside_0_1_is_refused(demo, image_file):
    assert "must lie in 0..1" in demo.run(image_file, MODES[0], CLASSES, threshold=1.5).message


def test_import_gradio_turns_analytics_off(monkeypatch):
    from maskrcnn_benchmark.engine.web_demo import import_gradio

    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    try:
        import gradio  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r'pip install -e "\.\[app\]"'):
            import_gradio()
        return
    assert import_gradio().__name__ == "gradio" and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_package_does_not_import_gradio():
    """Gradio is an optional extra: importing the package, the Predictor or web_demo must not load it."""
    code = ("import sys, maskrcnn_benchmark.engine.web_demo, maskrcnn_benchmark.engine.predictor, "
            "maskrcnn_benchmark.export; print('gradio' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
