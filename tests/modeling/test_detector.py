"""GeneralizedVLRCNN: upstream state-dict compatibility at full size (meta device), and the tiny model end to
end (losses, training, detections, freezing, lazy tokenizer, compiled vs pure-torch ops)."""

import json
from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.layers import _ext
from maskrcnn_benchmark.layers.deform_conv import ModulatedDeformConv
from maskrcnn_benchmark.modeling.detector import GeneralizedVLRCNN, build_detection_model, phrases_for_labels
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.image_list import to_image_list

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "upstream-state-dict"
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
TINY_V3 = REPO / "configs" / "tiny" / "fiber_tiny_v3.yaml"
LOSS_NAMES = {"loss_reg", "loss_centerness", "loss_cls", "loss_dot_product_token"}

FULL_CONFIGS = [
    ("pretrain/mixed_nococo_flickr_objects365.yaml", "pretrain_v2.json"),
    ("e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml", "coco_finetune_v2.json"),
    # no LVIS fixture: the LVIS fine-tune model has the COCO fine-tune architecture (same keys, same freezing)
    ("e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml", "coco_finetune_v2.json"),
    ("refcoco.yaml", "refcoco_v3.json"),
]


def _load_cfg(path, opts=()):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(path))
    cfg.merge_from_list(list(opts))
    return cfg


@pytest.mark.parametrize("config_name,fixture_name", FULL_CONFIGS)
def test_full_model_state_dict_matches_upstream(config_name, fixture_name):
    config, fixture = REPO / "configs" / config_name, FIXTURES / fixture_name
    for path in (config, fixture):
        if not path.is_file():
            pytest.skip(f"{path} is absent")
    expected = json.loads(fixture.read_text())
    with torch.device("meta"):
        model = build_detection_model(_load_cfg(config))
    ours = {k: (list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()}
    theirs = {k: (shape, dtype) for k, shape, dtype in expected["entries"]}
    assert sorted(set(ours) - set(theirs)) == [], "unexpected keys"
    assert sorted(set(theirs) - set(ours)) == [], "missing keys"
    assert {k: v for k, v in ours.items() if v != theirs[k]} == {}, "shape or dtype differs"
    assert {k for k, _ in model.named_buffers()} == set(expected["buffers"])
    assert sum(p.numel() for p in model.parameters()) == expected["num_params_total"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected["num_params"]
    assert isinstance(model, GeneralizedVLRCNN) and not hasattr(model, "backbone")


# ------------------------------------------------------------------------------------------------ tiny model
@pytest.fixture()
def one_thread():
    """Tiny ops are faster (and less sensitive to a busy machine) on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _tiny_model(seed=0, opts=(), path=TINY):
    torch.manual_seed(seed)
    return build_detection_model(_load_cfg(path, opts))


RED, BLUE = (0.0, 0.0, 255.0), (255.0, 0.0, 0.0)  # BGR


def _draw(shapes, cfg, size=128):
    """A grey BGR image with filled rectangles / discs, normalised like the data pipeline."""
    image = torch.full((3, size, size), 128.0)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    for kind, (x1, y1, x2, y2), colour in shapes:
        if kind == "square":
            inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        else:
            inside = (xs - (x1 + x2) / 2) ** 2 + (ys - (y1 + y2) / 2) ** 2 <= ((x2 - x1) / 2) ** 2
        image[:, inside] = torch.tensor(colour).view(3, 1)
    mean = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(cfg.INPUT.PIXEL_STD).view(3, 1, 1)
    return (image - mean) / std


def _synthetic_batch(cfg):
    """Two images with a red square (label 1) and a blue circle (label 2); caption "red square. blue circle"
    given as token ids: <s> red square . blue circle </s> -> label 1 = tokens 1-2, label 2 = tokens 4-5."""
    scenes = [[("square", (10, 15, 50, 55), RED), ("circle", (70, 60, 115, 105), BLUE)],
              [("circle", (20, 70, 60, 110), BLUE), ("square", (60, 10, 110, 60), RED)]]
    images = to_image_list([_draw(scene, cfg) for scene in scenes], cfg.DATALOADER.SIZE_DIVISIBILITY)
    label_tokens = {1: [1, 2], 2: [4, 5]}
    length = cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN
    input_ids = torch.ones(2, length, dtype=torch.long)
    attention_mask = torch.zeros(2, length, dtype=torch.long)
    input_ids[:, :7] = torch.tensor([0, 1000, 2000, 4, 3000, 4000, 2])
    attention_mask[:, :7] = 1
    targets, rows = [], []
    for scene in scenes:
        labels = [1 if kind == "square" else 2 for kind, _, _ in scene]
        target = BoxList(torch.tensor([list(box) for _, box, _ in scene], dtype=torch.float32), (128, 128))
        target.add_field("labels", torch.tensor(labels))
        targets.append(target)
        for label in labels:
            row = torch.zeros(length)
            row[label_tokens[label]] = 1.0
            rows.append(row)
    text = {"input_ids": input_ids, "attention_mask": attention_mask}
    return images, targets, torch.stack(rows), text, label_tokens


def test_tiny_train_losses_and_gradients(one_thread):
    model = _tiny_model().train()
    images, targets, positive_map, text, _ = _synthetic_batch(_load_cfg(TINY))
    losses = model(images, targets, positive_map=positive_map, tokenizer_input=text)
    assert set(losses) == LOSS_NAMES
    assert losses["loss_cls"].item() == 0.0
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert all(losses[k].item() > 0 for k in LOSS_NAMES - {"loss_cls"})
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert not any(p.requires_grad for p in model.rpn.head.cls_logits.parameters())


def test_tiny_train_under_autocast_gives_float32_losses(one_thread):
    model = _tiny_model().train()
    images, targets, positive_map, text, _ = _synthetic_batch(_load_cfg(TINY))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets, positive_map=positive_map, tokenizer_input=text)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


@pytest.mark.slow
def test_tiny_training_drives_loss_down(one_thread):
    # Dropout and DropBlock off so that 40 steps measure the optimisation, not the noise.
    opts = ["MODEL.FPN.DROP_BLOCK", False, "MODEL.LANGUAGE_BACKBONE.HIDDEN_DROPOUT_PROB", 0.0,
            "MODEL.LANGUAGE_BACKBONE.ATTENTION_DROPOUT_PROB", 0.0]
    model = _tiny_model(opts=opts).train()
    images, targets, positive_map, text, label_tokens = _synthetic_batch(_load_cfg(TINY))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=1e-4)
    history = []
    for _ in range(40):
        losses = model(images, targets, positive_map=positive_map, tokenizer_input=text)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert sum(history[-3:]) / 3 < 0.5 * history[0], history
    model.eval()
    with torch.no_grad():
        results = model(images, tokenizer_input=text, positive_map=label_tokens)
    for result, target in zip(results, targets):
        # the best-scored red-square detection overlaps the red square
        squares = result[result.get_field("labels") == 1]
        best = squares.bbox[squares.get_field("scores").argmax()]
        gt = target.bbox[target.get_field("labels") == 1][0]
        inter = (torch.min(best[2:], gt[2:]) - torch.max(best[:2], gt[:2])).clamp(min=0).prod()
        union = (best[2:] - best[:2]).prod() + (gt[2:] - gt[:2]).prod() - inter
        assert inter / union > 0.3


def test_tiny_eval_returns_valid_boxes(one_thread):
    # An untrained head scores about sigmoid(bias0) = 0.01 < the default 0.05 threshold: use refexp's 0.0.
    opts = ["MODEL.ATSS.INFERENCE_TH", 0.0]
    model = _tiny_model(opts=opts).eval()
    cfg = _load_cfg(TINY, opts)
    images, _, _, text, label_tokens = _synthetic_batch(cfg)
    images = to_image_list([images.tensors[0], images.tensors[1][:, :96, :]], 32)  # second image 96x128
    with torch.no_grad():
        results = model(images, tokenizer_input=text, positive_map={1: [1, 2], 7: [4, 5]})
    assert len(results) == 2
    for result, (height, width) in zip(results, images.image_sizes):
        assert result.size == (width, height) and len(result) > 0
        boxes = result.bbox
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width - 1).all() and (boxes[:, 3] <= height - 1).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert set(result.get_field("labels").tolist()) <= {1, 7}
        scores = result.get_field("scores")
        assert ((scores > 0) & (scores <= 1)).all()
        assert len(result) <= cfg.MODEL.ATSS.DETECTIONS_PER_IMG


def test_v3_tiny_model_runs(one_thread):
    model = _tiny_model(path=TINY_V3).eval()
    assert any(".norm_i2t_i." in k for k in model.state_dict())
    images, _, _, text, label_tokens = _synthetic_batch(_load_cfg(TINY_V3))
    with torch.no_grad():
        results = model(images, tokenizer_input=text, positive_map=label_tokens)
    assert len(results) == 2


def test_tokenizer_is_loaded_only_for_raw_captions(bpe_tokenizer_dir, tmp_path, one_thread):
    missing = tmp_path / "no_tokenizer_here"
    model = _tiny_model(opts=["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(missing)]).eval()
    images, _, _, text, label_tokens = _synthetic_batch(_load_cfg(TINY))
    with torch.no_grad():
        model(images, tokenizer_input=text, positive_map=label_tokens)  # no tokenizer needed
        with pytest.raises(FileNotFoundError, match="no_tokenizer_here"):
            model(images, captions=["red square. blue circle"] * 2, positive_map=label_tokens)
    model = _tiny_model(opts=["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir]).eval()
    encoded = model.tokenize(["red square. blue circle"] * 2)
    assert encoded["input_ids"].shape == (2, 128) and encoded["attention_mask"][0].sum() < 20
    with torch.no_grad():
        from_captions = model(images, captions=["red square. blue circle"] * 2, positive_map={1: [1, 2]})
        from_ids = model(images, tokenizer_input=encoded, positive_map={1: [1, 2]})
    for a, b in zip(from_captions, from_ids):
        torch.testing.assert_close(a.bbox, b.bbox)
    with pytest.raises(ValueError, match="captions"):
        model(images, captions=["one caption for two images"], positive_map={1: [1]})


def test_freezing_is_reapplied_by_train(one_thread):
    model = _tiny_model(opts=["MODEL.RPN.FREEZE", True, "MODEL.BACKBONE.FREEZE", True]).train()
    assert not any(p.requires_grad for p in model.rpn.parameters())
    assert not any(p.requires_grad for p in model.fusion_backbone.backbone.body.parameters())
    assert not model.fusion_backbone.backbone.body.training and not model.rpn.training
    assert any(p.requires_grad for p in model.fusion_backbone.language_backbone.parameters())
    probe = _tiny_model(opts=["MODEL.LINEAR_PROB", True]).train()
    trainable = {n for n, p in probe.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("rpn.head.") for n in trainable)
    assert "rpn.head.dot_product_projection_text.weight" in trainable
    assert "rpn.head.bbox_pred.weight" in trainable and "rpn.head.cls_logits.weight" not in trainable


def test_unsupported_options_are_rejected():
    with pytest.raises(ValueError, match="MASK_SPECIAL"):
        _tiny_model(opts=["MODEL.LANGUAGE_BACKBONE.MASK_SPECIAL", True])
    with pytest.raises(ValueError, match="RPN_ONLY"):
        _tiny_model(opts=["MODEL.RPN_ONLY", False])


def test_training_needs_targets_and_positive_map(one_thread):
    model = _tiny_model().train()
    images, targets, _, text, _ = _synthetic_batch(_load_cfg(TINY))
    with pytest.raises(ValueError, match="targets"):
        model(images, tokenizer_input=text)
    with pytest.raises(ValueError, match="positive_map"):
        model(images, targets, tokenizer_input=text)


def test_phrases_for_labels():
    caption = "a red square next to a blue circle"
    spans = {1: [(2, 5), (6, 12)], 2: [(23, 34)]}
    assert phrases_for_labels(torch.tensor([2, 1, 3]), caption, spans) == ["blue circle", "red square", ""]


def _set_impl(model, impl, monkeypatch):
    """Force every op the model uses onto one implementation ("compiled" or "torch")."""
    import importlib
    from functools import partial

    import maskrcnn_benchmark.layers as layers
    from maskrcnn_benchmark.modeling.rpn import loss as loss_module

    nms_module = importlib.import_module("maskrcnn_benchmark.layers.nms")
    focal_module = importlib.import_module("maskrcnn_benchmark.layers.sigmoid_focal_loss")
    for module in model.modules():
        if isinstance(module, ModulatedDeformConv):
            module.impl = impl
    monkeypatch.setattr(layers, "ml_nms", partial(nms_module.ml_nms, impl=impl))  # read by boxlist_ml_nms
    monkeypatch.setattr(loss_module, "token_sigmoid_focal_loss",
                        partial(focal_module.token_sigmoid_focal_loss, impl=impl))


@pytest.mark.skipif(not _ext.compiled_available("cpu"), reason="maskrcnn_benchmark._C is not built (pip install -e .)")
def test_compiled_and_pure_torch_paths_agree(monkeypatch, one_thread):
    model = _tiny_model()
    images, targets, positive_map, text, label_tokens = _synthetic_batch(_load_cfg(TINY))
    outputs = {}
    for impl in ("compiled", "torch"):
        _set_impl(model, impl, monkeypatch)
        model.eval()
        with torch.no_grad():
            detections = model(images, tokenizer_input=text, positive_map=label_tokens)
        model.train()
        torch.manual_seed(1)  # same DropBlock / dropout draws
        losses = model(images, targets, positive_map=positive_map, tokenizer_input=text)
        model.zero_grad()
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        outputs[impl] = (detections, losses, grads)
    (det_c, loss_c, grad_c), (det_t, loss_t, grad_t) = outputs["compiled"], outputs["torch"]
    for a, b in zip(det_c, det_t):
        torch.testing.assert_close(a.bbox, b.bbox, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(a.get_field("scores"), b.get_field("scores"), rtol=1e-4, atol=1e-5)
        assert a.get_field("labels").tolist() == b.get_field("labels").tolist()
    for name in LOSS_NAMES:
        torch.testing.assert_close(loss_c[name], loss_t[name], rtol=1e-4, atol=1e-5)
    assert grad_c.keys() == grad_t.keys()
    for name in grad_c:
        torch.testing.assert_close(grad_c[name], grad_t[name], rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiny_model_on_cuda_matches_cpu():
    opts = ["MODEL.ATSS.INFERENCE_TH", 0.0, "MODEL.FPN.DROP_BLOCK", False,
            "MODEL.LANGUAGE_BACKBONE.HIDDEN_DROPOUT_PROB", 0.0, "MODEL.LANGUAGE_BACKBONE.ATTENTION_DROPOUT_PROB", 0.0]
    cpu_model = _tiny_model(opts=opts)
    gpu_model = _tiny_model(opts=opts).cuda()
    gpu_model.load_state_dict(cpu_model.state_dict())
    images, targets, positive_map, text, label_tokens = _synthetic_batch(_load_cfg(TINY, opts))
    gpu_text = {k: v.cuda() for k, v in text.items()}
    cpu_losses = cpu_model.train()(images, targets, positive_map=positive_map, tokenizer_input=text)
    gpu_losses = gpu_model.train()(images.to("cuda"), targets, positive_map=positive_map.cuda(),
                                   tokenizer_input=gpu_text)
    for name in LOSS_NAMES:
        torch.testing.assert_close(gpu_losses[name].cpu(), cpu_losses[name], rtol=2e-3, atol=2e-4)
    with torch.autocast("cuda", dtype=torch.float16):
        amp_losses = gpu_model(images.to("cuda"), targets, positive_map=positive_map.cuda(), tokenizer_input=gpu_text)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in amp_losses.values())
    with torch.no_grad():
        cpu_results = cpu_model.eval()(images, tokenizer_input=text, positive_map=label_tokens)
        gpu_results = gpu_model.eval()(images.to("cuda"), tokenizer_input=gpu_text, positive_map=label_tokens)
    for cpu_result, gpu_result in zip(cpu_results, gpu_results):
        cpu_scores = cpu_result.get_field("scores").sort(descending=True).values[:10]
        gpu_scores = gpu_result.get_field("scores").cpu().sort(descending=True).values[:10]
        torch.testing.assert_close(gpu_scores, cpu_scores, rtol=1e-3, atol=1e-4)


def test_long_captions_are_counted_and_warned_about_once(bpe_tokenizer_dir, caplog, one_thread):
    model = _tiny_model(opts=["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir])
    long = "a red square next to a blue circle. " * 30  # about 270 tokens, MAX_QUERY_LEN is 128
    with caplog.at_level("WARNING", logger="maskrcnn_benchmark.modeling.detector.generalized_vl_rcnn"):
        model.tokenize(["red square. blue circle"] * 2)
        assert model.long_captions == 0 and not caplog.records
        encoded = model.tokenize([long, "red square", long])
        model.tokenize([long])
    assert encoded["input_ids"].shape == (3, 128) and model.long_captions == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "longer than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN = 128" in warnings[0]
