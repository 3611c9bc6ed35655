"""ONNX export of the tiny model (tools/export_onnx.py) checked with onnxruntime: the graph, raw outputs,
final detections through the Predictor, chunked prompts, and errors."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _onnx_helpers import CANVAS, REPO, TINY, assert_same_detections, tiny_opts

CLASSES = ["red square", "blue circle", "green triangle"]


def scene(seed, size):
    from maskrcnn_benchmark.data.synthetic import SHAPE_CLASSES, draw_scene

    return draw_scene(np.random.default_rng(seed), SHAPE_CLASSES[:3], 3, size=size)[0]


def as_detections(boxlist):
    return SimpleNamespace(boxes=boxlist.bbox, scores=boxlist.get_field("scores"), labels=boxlist.get_field("labels"))


def canvas_batch(tensors):
    """An ImageList of images zero-padded to the export's canvas (what the PyTorch reference must see too)."""
    from maskrcnn_benchmark.structures.image_list import ImageList

    batch = torch.zeros(len(tensors), 3, *CANVAS)
    for i, tensor in enumerate(tensors):
        batch[i, :, : tensor.shape[1], : tensor.shape[2]] = tensor
    return ImageList(batch, [tuple(t.shape[1:]) for t in tensors])


@pytest.fixture(scope="module")
def model(tiny_export):
    from maskrcnn_benchmark.engine.predictor import Predictor

    _, weight, cfg, _ = tiny_export
    return Predictor(cfg, weight=weight, device="cpu").model


@pytest.fixture(scope="module")
def detector(tiny_export):
    from maskrcnn_benchmark.export import OnnxDetector

    return OnnxDetector(tiny_export[0])


def test_graph_is_standard_opset19_with_deform_conv_and_dynamic_batch_and_length(tiny_export):
    import onnx

    path, _, cfg, check = tiny_export
    assert check["max_abs_error"] < 1e-4  # the tool's own --check
    proto = onnx.load(path)
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", 19)}  # no custom operator domain
    ops = [node.op_type for node in proto.graph.node]
    levels = len(cfg.MODEL.RPN.ANCHOR_STRIDE)
    # Every DyConv block: one same-level conv per level, a finer one for levels 1.., a coarser one for ..3.
    assert ops.count("DeformConv") == cfg.MODEL.DYHEAD.NUM_CONVS * (3 * levels - 2)
    shapes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    batch, tokens = shapes["input_ids"]
    assert isinstance(batch, str) and isinstance(tokens, str)
    assert shapes["images"] == [batch, 3, *CANVAS] and shapes["attention_mask"] == [batch, tokens]
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["maskrcnn_benchmark.image_size"] == f"{CANVAS[0]},{CANVAS[1]}"
    assert "DYHEAD" in metadata["maskrcnn_benchmark.config"]


@pytest.mark.parametrize("batch,length,padded", [(1, 128, 0), (3, 9, 4)])
def test_raw_outputs_match_pytorch(model, detector, batch, length, padded):
    from maskrcnn_benchmark.export import DetectorGraph
    from maskrcnn_benchmark.export.onnx_export import sample_inputs

    images, input_ids, attention_mask = sample_inputs(detector.cfg, CANVAS, batch, length, seed=batch)
    if padded:  # the last tokens are padding, as the tokenizer pads shorter captions of a batch
        input_ids[1:, -padded:], attention_mask[1:, -padded:] = 1, 0
    expected = DetectorGraph(model).run(images, input_ids, attention_mask)
    got = detector.raw_outputs(images, input_ids, attention_mask)
    flat = [t for level in zip(got.box_regression, got.centerness, got.dot_product_logits) for t in level]
    assert len(flat) == len(expected) == 15
    for (name, want), have in zip(expected.items(), flat):
        assert have.shape == want.shape, name
        torch.testing.assert_close(have, want, rtol=0, atol=1e-4, msg=name)


def test_outputs_keep_the_coarser_level_offset_quirk(model, detector, monkeypatch):
    """Without upstream's offset reinterpretation (1.10) PyTorch's outputs move far more than the tolerance."""
    from maskrcnn_benchmark.export import DetectorGraph
    from maskrcnn_benchmark.export.onnx_export import sample_inputs
    from maskrcnn_benchmark.layers import deform_conv

    images, input_ids, attention_mask = sample_inputs(detector.cfg, CANVAS, 1, 16, seed=5)
    got = detector.raw_outputs(images, input_ids, attention_mask)
    quirk = DetectorGraph(model).run(images, input_ids, attention_mask)
    torch.testing.assert_close(got.box_regression[0], quirk["box_regression_0"], rtol=0, atol=1e-4)

    def crop(name, tensor, channels, batch, out_h, out_w):  # the "natural" fix: the top-left Ho x Wo block
        return tensor[:, :, :out_h, :out_w]

    monkeypatch.setattr(deform_conv, "_align_to_output", crop)
    cropped = DetectorGraph(model).run(images, input_ids, attention_mask)
    assert (got.box_regression[0] - cropped["box_regression_0"]).abs().max() > 1e-3


def test_predictor_on_onnxruntime_gives_pytorchs_detections(tiny_export, detector):
    from maskrcnn_benchmark.engine.predictor import Predictor
    from maskrcnn_benchmark.export import onnx_predictor

    path, weight, cfg, _ = tiny_export
    on_onnx = onnx_predictor(path, batch_size=2)
    assert on_onnx.model.image_size == CANVAS and on_onnx.pad_mode == "canvas"
    on_torch = Predictor(cfg, weight=weight, device="cpu", pad_mode="canvas", canvas_size=CANVAS, batch_size=2)
    images = [scene(i, size) for i, size in enumerate([(160, 128), (200, 140), (128, 100)])]
    for prompt, kwargs in ((CLASSES, {}), ("a red square and a blue circle", {"phrases": ["red square", "circle"]})):
        for got, want in zip(on_onnx.predict(images, prompt, **kwargs), on_torch.predict(images, prompt, **kwargs)):
            assert len(got) > 10 and set(got.names) == set(want.names)
            assert_same_detections(got, want)


def test_web_demo_on_onnxruntime(tiny_export, tmp_path):
    """tools/app.py --onnx: the page's requests on the onnxruntime back end give PyTorch's rows."""
    from maskrcnn_benchmark.engine.predictor import Predictor
    from maskrcnn_benchmark.engine.web_demo import MODES, WebDemo
    from maskrcnn_benchmark.export import onnx_predictor

    path, weight, cfg, _ = tiny_export
    image = scene(7, (170, 130))
    on_torch = Predictor(cfg, weight=weight, device="cpu", pad_mode="canvas", canvas_size=CANVAS)
    got = WebDemo(onnx_predictor(path), output_dir=str(tmp_path)).run(image, MODES[0], ", ".join(CLASSES), "", "", 0.3)
    want = WebDemo(on_torch, output_dir=str(tmp_path)).run(image, MODES[0], ", ".join(CLASSES), "", "", 0.3)
    assert got.ok and want.ok and len(got.rows) > 0

    def as_table(rows):  # table rows: #, name, label, score (3 decimals), x1, y1, x2, y2 (1 decimal)
        return SimpleNamespace(boxes=torch.tensor([row[4:] for row in rows]),
                               scores=torch.tensor([row[3] for row in rows]),
                               labels=torch.tensor([row[2] for row in rows]))

    assert_same_detections(as_table(got.rows), as_table(want.rows), score_atol=1.1e-3, box_atol=0.11)


def test_detect_prompts_merges_chunks_with_global_labels(model, detector):
    """The model's test-time entry point for chunked prompts, on onnxruntime, gives the model's detections."""
    from maskrcnn_benchmark.data.prompts import plan_detection_prompts

    names = {label: f"shape {label} of the list" for label in (3, 7, 12, 85)}
    plans = plan_detection_prompts(names, detector.tokenizer, separation_tokens=". ", chunk_size=2, max_query_len=128)
    assert len(plans) == 2
    torch.manual_seed(3)
    batch = canvas_batch([torch.randn(3, 128, 160), torch.randn(3, 100, 140)])
    with pytest.raises(ValueError, match="label slots"):  # label 85 > the 80 slots, as the model's check
        detector.detect_prompts(batch, plans)
    merged = detector.detect_prompts(batch, plans, check_label_slots=False)
    expected = model.detect_prompts(batch, plans, check_label_slots=False, reuse_prefix=False)
    assert [boxlist.size for boxlist in merged] == [(160, 128), (140, 100)]
    for got, want in zip(merged, expected):
        assert set(got.get_field("labels").tolist()) == set(names)
        assert_same_detections(as_detections(got), as_detections(want))
    with pytest.raises(ValueError, match="float32"):
        detector.detect_prompts(batch, plans, precision="fp16")


def test_errors(tiny_export, detector, tmp_path):
    import onnx

    from maskrcnn_benchmark.export import OnnxDetector

    too_big = torch.zeros(1, 3, CANVAS[0] + 32, CANVAS[1])
    with pytest.raises(ValueError, match="do not fit the 160x224 canvas"):
        detector(too_big, captions=["a red square"], positive_map={1: [1, 2]})
    with pytest.raises(ValueError, match="inference only"):
        detector(torch.zeros(1, 3, 64, 64), targets=[], captions=["x"], positive_map={1: [1]})
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxDetector(str(tmp_path / "nope.onnx"))
    proto = onnx.load(tiny_export[0])
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ValueError, match="pass the config with cfg="):
        OnnxDetector(str(bare))
    assert OnnxDetector(str(bare), cfg=tiny_export[2]).image_size == CANVAS  # read from the input's shape


def test_tool_rejects_a_canvas_that_is_not_a_multiple_of_32(bpe_tokenizer_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "export_onnx.py"), "--config-file", str(TINY), "--output",
         str(tmp_path / "x.onnx"), "--image-size", "100", "128", *tiny_opts(bpe_tokenizer_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "multiples of DATALOADER.SIZE_DIVISIBILITY (32)" in result.stderr
    assert not (tmp_path / "x.onnx").exists()
