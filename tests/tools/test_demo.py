"""tools/demo.py: annotated PNGs where the JSON says, JSON equal to the Predictor's output, bad input."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
CLASSES = ["red square", "blue circle", "green triangle"]


def _demo_module():
    spec = importlib.util.spec_from_file_location("fiber_demo_tool", REPO / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _opts(tokenizer_dir):
    return ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(tokenizer_dir), "MODEL.ATSS.INFERENCE_TH", "0.0",
            "MODEL.ATSS.DETECTIONS_PER_IMG", "3"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, bpe_tokenizer_dir):
    if not TINY.is_file():
        pytest.skip(f"{TINY} is absent")
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.data.synthetic import SHAPE_CLASSES, draw_scene
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer

    root = tmp_path_factory.mktemp("demo")
    (root / "images").mkdir()
    paths = []
    for i, size in enumerate([(160, 128), (200, 150)]):
        image, _ = draw_scene(np.random.default_rng(i), SHAPE_CLASSES[:3], 3, size=size)
        paths.append(root / "images" / f"img{i}.png")
        image.save(paths[-1])
    extra, _ = draw_scene(np.random.default_rng(9), SHAPE_CLASSES[:3], 2, size=(140, 140))
    paths.append(root / "extra.jpg")
    extra.save(paths[-1], quality=95)
    cfg = load_config(str(TINY), _opts(bpe_tokenizer_dir))
    torch.manual_seed(0)
    weight = DetectronCheckpointer(None, build_detection_model(cfg), save_dir=str(root / "w")).save("model_final")
    return root, paths, weight, cfg


def _run(args):
    demo = _demo_module()
    return demo.run(demo.build_parser().parse_args(args))


def test_demo_writes_pngs_and_json_matching_the_predictor(setup, bpe_tokenizer_dir):
    from maskrcnn_benchmark.engine.predictor import Predictor
    from maskrcnn_benchmark.utils.visualizer import color_for_label

    root, paths, weight, cfg = setup
    out = root / "out"
    assert _run(["--config-file", str(TINY), "--weight", weight, "--input", str(root / "images"), str(paths[2]),
                 "--output", str(out), "--classes", ",".join(CLASSES), "--threshold", "0.0",
                 *_opts(bpe_tokenizer_dir)]) == 0
    summary = json.loads((out / "detections.json").read_text())
    assert summary["prompt"] == {"classes": CLASSES} and len(summary["images"]) == 3
    assert [Path(r["source"]).name for r in summary["images"]] == ["img0.png", "img1.png", "extra.jpg"]

    expected = Predictor(cfg, weight=weight, device="cpu").predict([str(p) for p in paths], CLASSES, threshold=0.0)
    for record, dets, path in zip(summary["images"], expected, paths):
        assert len(record["detections"]) == len(dets) > 0
        for got, box, score, label, name in zip(record["detections"], dets.boxes.tolist(), dets.scores.tolist(),
                                                dets.labels.tolist(), dets.names):
            assert got["box"] == pytest.approx(box, abs=1e-2) and got["score"] == pytest.approx(score, abs=1e-4)
            assert got["label"] == label and got["name"] == name == CLASSES[label - 1]

        drawn = np.asarray(Image.open(record["output"]).convert("RGB")).astype(int)
        original = np.asarray(Image.open(path).convert("RGB")).astype(int)
        assert drawn.shape == original.shape
        # The best box is drawn last: its outline carries its class colour.
        best = record["detections"][0]
        x1, y1, x2, y2 = [int(round(v)) for v in best["box"]]
        h, w = original.shape[:2]
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
        outline = np.concatenate([drawn[y1:y2 + 1, x1], drawn[y1:y2 + 1, x2], drawn[y1, x1:x2 + 1],
                                  drawn[y2, x1:x2 + 1]])
        colour = np.array(color_for_label(best["label"]))
        assert (outline == colour).all(axis=1).mean() > 0.7
        # Nothing changes outside the drawn boxes and their tags (tags sit at most ~16 px above a box).
        changed = np.argwhere((drawn != original).any(axis=2))
        assert len(changed) > 0
        inside_any = np.zeros(len(changed), dtype=bool)
        for det in record["detections"]:
            bx1, by1, bx2, by2 = det["box"]
            inside_any |= ((changed[:, 1] >= bx1 - 2) & (changed[:, 1] <= max(bx2, bx1 + 120) + 2)
                           & (changed[:, 0] >= by1 - 20) & (changed[:, 0] <= by2 + 2))
        assert inside_any.all()


def test_demo_caption_mode(setup, bpe_tokenizer_dir):
    root, paths, weight, _ = setup
    out = root / "out_caption"
    assert _run(["--config-file", str(TINY), "--weight", weight, "--input", str(paths[0]), "--output", str(out),
                 "--caption", "a red square. a blue circle", "--threshold", "0.0", *_opts(bpe_tokenizer_dir)]) == 0
    summary = json.loads((out / "detections.json").read_text())
    assert summary["prompt"]["phrases"] == ["a red square", "a blue circle"]
    names = {d["name"] for d in summary["images"][0]["detections"]}
    assert names and names <= {"a red square", "a blue circle"}
    assert (out / "img0.png").is_file()


def test_demo_bad_input(setup, bpe_tokenizer_dir, tmp_path):
    root, paths, weight, _ = setup
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        _run(["--config-file", str(TINY), "--input", str(tmp_path / "nope.jpg"), "--output", str(tmp_path),
              "--classes", "a", *_opts(bpe_tokenizer_dir)])
    with pytest.raises(ValueError, match="no class name"):
        _run(["--config-file", str(TINY), "--input", str(paths[0]), "--output", str(tmp_path), "--classes", " , ",
              *_opts(bpe_tokenizer_dir)])
    with pytest.raises(ValueError, match="config key"):
        _run(["--config-file", str(TINY), "--output", str(tmp_path), "--classes", "a", "--input", str(paths[0]),
              *_opts(bpe_tokenizer_dir)])
    # From the command line: one line on stderr, exit status 2, no traceback.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("FIBER_DEBUG", None)
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--config-file", str(TINY),
                           "--input", str(tmp_path / "nope.jpg"), "--output", str(tmp_path), "--classes", "a"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "nope.jpg" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_skips_a_broken_image_writes_the_rest_and_exits_1(setup, bpe_tokenizer_dir, tmp_path):
    root, paths, weight, _ = setup
    folder = tmp_path / "images"
    folder.mkdir()
    for path in paths[:2]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"")  # zero bytes
    (folder / "notes.png").write_text("not an image")
    out = tmp_path / "out"
    args = ["--config-file", str(TINY), "--weight", weight, "--input", str(folder), "--output", str(out),
            "--classes", ",".join(CLASSES), "--threshold", "0.0", *_opts(bpe_tokenizer_dir)]
    assert _run(args) == 1
    summary = json.loads((out / "detections.json").read_text())
    assert [Path(r["source"]).name for r in summary["images"]] == ["img0.png", "img1.png"]
    assert (out / "img0.png").is_file() and (out / "img1.png").is_file() and not (out / "broken.png").exists()
    assert len(summary["unreadable"]) == 2 and "broken.jpg" in summary["unreadable"][0]
    # --strict stops at the first unreadable image, naming it.
    with pytest.raises(ValueError, match="broken.jpg"):
        _run(args[:-len(_opts(bpe_tokenizer_dir))] + ["--strict", *_opts(bpe_tokenizer_dir)])


def test_demo_checks_its_output_folder_before_building_the_model(setup, bpe_tokenizer_dir, tmp_path, monkeypatch):
    root, paths, weight, _ = setup
    import maskrcnn_benchmark.engine.predictor as predictor_module

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the output folder was checked")

    monkeypatch.setattr(predictor_module, "Predictor", no_model)
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    for output, message in ((a_file, "is a file, not a folder"), (a_file / "sub", "cannot create the folder")):
        with pytest.raises(ValueError, match=message):
            _run(["--config-file", str(TINY), "--weight", weight, "--input", str(paths[0]), "--output", str(output),
                  "--classes", "a", *_opts(bpe_tokenizer_dir)])
    out = tmp_path / "new" / "folder"
    with pytest.raises(AssertionError, match="model was built"):  # created first, then the model
        _run(["--config-file", str(TINY), "--weight", weight, "--input", str(paths[0]), "--output", str(out),
              "--classes", "a", *_opts(bpe_tokenizer_dir)])
    assert out.is_dir()
