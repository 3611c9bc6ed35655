"""The inference weight loader: one policy for evaluation, the Predictor, fine-tuning's evaluations and the demo."""

import copy
import importlib.util
import logging
import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.config import load_config
from maskrcnn_benchmark.engine.weights import load_inference_weights, non_finite_tensors, untrained_parts
from maskrcnn_benchmark.utils.key_map import SWIN_BODY, TEXT_BODY

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"


@pytest.fixture(scope="module")
def cfg():
    return load_config(TINY, freeze=True)


@pytest.fixture(scope="module")
def trained(cfg):
    """The tiny model standing for a fine-grained FIBER checkpoint."""
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    torch.manual_seed(0)
    return build_detection_model(cfg)


@pytest.fixture
def fresh(cfg):
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    torch.manual_seed(1)
    return build_detection_model(cfg)


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _coarse_file(model, path):
    """The model's Swin and RoBERTa weights under the coarse stage's prefixes, as fiber_coarse_init.pt holds them."""
    coarse = OrderedDict()
    for key, value in model.state_dict().items():
        if key.startswith(SWIN_BODY) and not re.match(re.escape(SWIN_BODY) + r"norm\d", key):
            coarse["vit_model." + key[len(SWIN_BODY):]] = value
        elif key.startswith(TEXT_BODY):
            coarse["text_transformer." + key[len(TEXT_BODY):]] = value
    coarse["itm_score.fc.weight"] = torch.zeros(2, 4)
    torch.save({"state_dict": coarse, "epoch": 1}, path)
    return str(path)


def test_a_full_checkpoint_loads_exactly(trained, fresh, tmp_path):
    path = tmp_path / "model_final.pth"
    torch.save({"model": trained.state_dict(), "iteration": 10}, path)
    report = load_inference_weights(fresh, str(path))
    assert report.kind == "training" and report.is_clean and _same(fresh, trained)
    assert load_inference_weights(fresh, None) is None


def test_a_coarse_stage_file_is_refused_naming_the_untrained_parts(trained, fresh, tmp_path):
    path = _coarse_file(trained, tmp_path / "fiber_coarse_init.pt")
    before = copy.deepcopy(fresh.state_dict())
    with pytest.raises(ValueError) as info:
        load_inference_weights(fresh, path)
    message = str(info.value)
    assert "fiber_coarse_init.pt is a 'coarse' checkpoint" in message
    assert "FPN (16 tensors: fusion_backbone.backbone.fpn." in message
    assert "DyHead and VL box head (" in message and "rpn.head." in message
    assert "Swin image backbone (" in message and ".norm" in message  # the Swin output norms, absent in the file
    assert "RoBERTa" not in message and "allow_untrained=True" in message
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())  # refused before loading


def test_untrained_parts_can_be_allowed_explicitly(trained, fresh, tmp_path, caplog):
    path = _coarse_file(trained, tmp_path / "coarse.pt")
    with caplog.at_level(logging.WARNING, logger="maskrcnn_benchmark.engine.weights"):
        report = load_inference_weights(fresh, path, allow_untrained=True)
    assert report.kind == "coarse" and "running with untrained parts" in caplog.text and "FPN" in caplog.text
    got, want = fresh.state_dict(), trained.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in report.loaded)
    assert not torch.equal(got["rpn.head.cls_logits.weight"], want["rpn.head.cls_logits.weight"])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_first_tensor(trained, fresh, tmp_path, value):
    state = copy.deepcopy(trained.state_dict())
    state["rpn.head.cls_logits.weight"][0, 0] = value
    state["rpn.head.bbox_pred.weight"][1, 0] = value
    path = tmp_path / "diverged.pth"
    torch.save({"model": state}, path)
    before = copy.deepcopy(fresh.state_dict())
    with pytest.raises(ValueError, match=r"diverged.pth: tensor rpn\.head\.\w+\.weight holds NaN or infinite "
                                         r"values \(2 of \d+ tensors do\)") as info:
        load_inference_weights(fresh, str(path))
    first = [k for k in state if k in ("rpn.head.cls_logits.weight", "rpn.head.bbox_pred.weight")][0]
    assert f"tensor {first} " in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())


def test_the_ema_weights_are_checked_when_they_are_used(trained, fresh, tmp_path):
    ema = copy.deepcopy(trained.state_dict())
    ema["fusion_backbone.backbone.fpn.fpn_inner2.weight"].fill_(float("nan"))
    path = tmp_path / "with_ema.pth"
    torch.save({"model": trained.state_dict(), "model_ema": ema}, path)
    with pytest.raises(ValueError, match="fpn_inner2.weight holds NaN"):
        load_inference_weights(fresh, str(path), use_ema=True)
    load_inference_weights(fresh, str(path))
    assert _same(fresh, trained)


def test_non_finite_tensors_and_grouping_helpers():
    state = {"a.weight": torch.ones(2), "b.count": torch.tensor([3]), "c.bias": torch.tensor([1.0, float("-inf")])}
    assert non_finite_tensors(state) == ["c.bias"]
    parts = untrained_parts(["rpn.head.cls_logits.weight", "rpn.head.cls_logits.bias", "extra.scale",
                             "fusion_backbone.backbone.fpn.layer_blocks.0.weight"])
    assert parts == ["FPN (1 tensors: fusion_backbone.backbone.fpn.layer_blocks.0.weight)",
                     "DyHead and VL box head (2 tensors: rpn.head.cls_logits.{bias, weight})",
                     "extra (1 tensors: extra.scale)"]


def test_evaluation_and_the_predictor_share_the_policy(cfg, trained, tmp_path):
    """Evaluation used to load a coarse-stage file silently (random FPN and head); now both refuse it."""
    from maskrcnn_benchmark.engine.evaluate import evaluate_checkpoint
    from maskrcnn_benchmark.engine.predictor import Predictor

    path = _coarse_file(trained, tmp_path / "fiber_coarse_init.pt")
    eval_cfg = cfg.clone()
    eval_cfg.defrost()
    eval_cfg.OUTPUT_DIR = str(tmp_path / "eval")
    with pytest.raises(ValueError, match="'coarse' checkpoint: it would leave .* FPN"):
        evaluate_checkpoint(eval_cfg, path, [], False, torch.device("cpu"))
    with pytest.raises(ValueError, match="'coarse' checkpoint: it would leave .* FPN"):
        Predictor(cfg, weight=path, device="cpu")
    state = copy.deepcopy(trained.state_dict())
    state["rpn.head.centerness.bias"].fill_(float("nan"))
    nan_path = tmp_path / "nan.pth"
    torch.save({"model": state}, nan_path)
    with pytest.raises(ValueError, match="rpn.head.centerness.bias holds NaN"):
        Predictor(cfg, weight=str(nan_path), device="cpu")
    allowed = Predictor(cfg, weight=path, device="cpu", allow_untrained=True)
    assert torch.equal(allowed.model.state_dict()["fusion_backbone.backbone.body.patch_embed.proj.weight"],
                       trained.state_dict()["fusion_backbone.backbone.body.patch_embed.proj.weight"])


def test_training_start_weights_still_accept_a_coarse_file(trained, fresh, tmp_path, caplog):
    """MODEL.WEIGHT for (fine-)tuning from the coarse stage: the training checkpointer loads it with the report."""
    from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer

    path = _coarse_file(trained, tmp_path / "fiber_coarse_init.pt")
    with caplog.at_level(logging.INFO, logger="maskrcnn_benchmark.utils.model_serialization"):
        DetectronCheckpointer(None, fresh, save_dir="").load(path)
    assert "(kind: coarse)" in caplog.text and "missing, expected for this kind of file" in caplog.text
    assert "fusion_backbone.backbone.fpn." in caplog.text


@pytest.mark.parametrize("tool", ["test_grounding_net.py", "demo.py"])
def test_the_tools_offer_the_opt_in(tool):
    spec = importlib.util.spec_from_file_location(f"tool_{tool[:-3]}", REPO / "tools" / tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--config-file", "x.yaml", "--allow-untrained-weights"]
    if tool == "demo.py":
        argv += ["--input", "a.jpg", "--output", "out", "--classes", "a"]
    assert module.build_parser().parse_args(argv).allow_untrained
    assert not module.build_parser().parse_args([a for a in argv if a != "--allow-untrained-weights"]).allow_untrained
