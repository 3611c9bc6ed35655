"""Parameter groups, optimizers, schedules from the config, gradient clipping."""

import math

import pytest
import torch
from torch import nn

from maskrcnn_benchmark.config import cfg as base_cfg
from maskrcnn_benchmark.solver.build import (
    build_param_groups,
    clip_gradients,
    gradient_clip_settings,
    make_lr_scheduler,
    make_model_ema,
    make_optimizer,
    param_lr_and_weight_decay,
    resolve_milestones,
)
from maskrcnn_benchmark.solver.lr_scheduler import (
    WarmupCosineAnnealingLR,
    WarmupMultiStepLR,
    WarmupReduceLROnPlateau,
)


def _cfg(**solver):
    cfg = base_cfg.clone()
    cfg.defrost()
    for key, value in solver.items():
        node = cfg.SOLVER
        *path, leaf = key.split("__")
        for part in path:
            node = node[part]
        node[leaf] = value
    return cfg


class Named(nn.Module):
    """Parameter names that exercise every grouping rule (as in the FIBER state dict)."""

    def __init__(self):
        super().__init__()
        self.fusion_backbone = nn.Module()
        fb = self.fusion_backbone
        fb.backbone = nn.Module()
        fb.backbone.body = nn.Module()
        fb.backbone.body.proj = nn.Linear(2, 2)                      # Swin: body factor
        fb.backbone.body.norm1 = nn.LayerNorm(2)                     # Swin norm (bias + norm)
        fb.backbone.body.relative_position_bias_table = nn.Parameter(torch.zeros(3, 1))  # contains "bias"
        fb.backbone.fpn = nn.Conv2d(2, 2, 1)                         # FPN: base lr
        fb.language_backbone = nn.Module()
        fb.language_backbone.body = nn.Module()
        fb.language_backbone.body.dense = nn.Linear(2, 2)            # RoBERTa: LANG_LR
        fb.language_backbone.body.LayerNorm = nn.LayerNorm(2)        # "Norm"
        fb.language_backbone.body.alpha_t2i = nn.Parameter(torch.zeros(1))
        self.rpn = nn.Module()
        self.rpn.head = nn.Module()
        self.rpn.head.log_scale = nn.Parameter(torch.zeros(1))
        self.rpn.head.bias_lang = nn.Parameter(torch.zeros(2))
        self.rpn.head.cls_logits = nn.Conv2d(2, 2, 1)
        for p in self.rpn.head.cls_logits.parameters():
            p.requires_grad_(False)                                   # frozen: not in any group


RATES = dict(base_lr=1e-4, lang_lr=1e-5, backbone_body_lr_factor=0.5, bias_lr_factor=2.0, weight_decay=0.01,
             weight_decay_bias=0.0, weight_decay_norm_factor=0.5)

EXPECTED = {
    "fusion_backbone.backbone.body.proj.weight": (0.5e-4, 0.01),
    "fusion_backbone.backbone.body.proj.bias": (1e-4, 0.0),
    "fusion_backbone.backbone.body.norm1.weight": (0.5e-4, 0.005),
    "fusion_backbone.backbone.body.norm1.bias": (1e-4, 0.0),
    "fusion_backbone.backbone.body.relative_position_bias_table": (1e-4, 0.0),
    "fusion_backbone.backbone.fpn.weight": (1e-4, 0.01),
    "fusion_backbone.backbone.fpn.bias": (2e-4, 0.0),
    "fusion_backbone.language_backbone.body.dense.weight": (1e-5, 0.01),
    "fusion_backbone.language_backbone.body.dense.bias": (2e-5, 0.0),
    "fusion_backbone.language_backbone.body.LayerNorm.weight": (1e-5, 0.005),
    "fusion_backbone.language_backbone.body.LayerNorm.bias": (2e-5, 0.0),
    "fusion_backbone.language_backbone.body.alpha_t2i": (1e-5, 0.01),
    "rpn.head.log_scale": (1e-4, 0.01),
    "rpn.head.bias_lang": (2e-4, 0.0),
}


def test_param_rules_match_upstream():
    for name, (lr, wd) in EXPECTED.items():
        got = param_lr_and_weight_decay(name, **RATES)
        assert got == pytest.approx((lr, wd)), name


def test_dcn_offset_lr_factor_scales_only_the_dyhead_offset_convs():
    rates = dict(RATES, dcn_offset_lr_factor=0.1)
    assert param_lr_and_weight_decay("rpn.head.dyhead_tower.0.offset.weight", **rates) == pytest.approx((1e-5, 0.01))
    assert param_lr_and_weight_decay("rpn.head.dyhead_tower.5.offset.bias", **rates) == pytest.approx((2e-5, 0.0))
    for name in ("rpn.head.dyhead_tower.0.DyConv.1.conv.weight", "rpn.head.dyhead_tower.0.AttnConv.1.weight"):
        assert param_lr_and_weight_decay(name, **rates) == pytest.approx((1e-4, 0.01)), name
    # the default factor 1.0 keeps upstream's rates
    assert param_lr_and_weight_decay("rpn.head.dyhead_tower.0.offset.weight", **RATES) == pytest.approx((1e-4, 0.01))


def test_make_optimizer_reads_dcn_offset_lr_factor():
    model = Named()
    model.rpn.head.dyhead_tower = nn.ModuleList([nn.Module()])
    model.rpn.head.dyhead_tower[0].offset = nn.Conv2d(2, 27, 3)
    groups = make_optimizer(_cfg(OPTIMIZER="ADAMW", BASE_LR=1e-3, DCN_OFFSET_LR_FACTOR=0.1), model).param_groups
    lrs = {name: group["lr"] for group in groups for name in group["names"]}
    assert lrs["rpn.head.dyhead_tower.0.offset.weight"] == pytest.approx(1e-4)
    assert lrs["rpn.head.dyhead_tower.0.offset.bias"] == pytest.approx(2e-4)
    assert lrs["fusion_backbone.backbone.fpn.weight"] == pytest.approx(1e-3)


def test_groups_one_per_distinct_setting_same_values():
    model = Named()
    groups = build_param_groups(model.named_parameters(), **RATES)
    settings = [(g["lr"], g["weight_decay"]) for g in groups]
    assert len(settings) == len(set(settings)) == len(set(EXPECTED.values()))
    seen = {}
    for group in groups:
        assert len(group["names"]) == len(group["params"])
        for name, param in zip(group["names"], group["params"]):
            seen[name] = (group["lr"], group["weight_decay"])
            assert param is dict(model.named_parameters())[name]
    assert seen.keys() == EXPECTED.keys()  # frozen cls_logits excluded
    for name, value in EXPECTED.items():
        assert seen[name] == pytest.approx(value), name


def test_grouped_adamw_equals_per_parameter_adamw():
    """Merging groups changes nothing numerically (upstream uses one group per parameter)."""
    torch.manual_seed(0)
    a, b = Named(), Named()
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.AdamW(build_param_groups(a.named_parameters(), **RATES), lr=1e-4)
    per_param = []
    for name, p in b.named_parameters():
        if p.requires_grad:
            lr, wd = param_lr_and_weight_decay(name, **RATES)
            per_param.append({"params": [p], "lr": lr, "weight_decay": wd})
    opt_b = torch.optim.AdamW(per_param, lr=1e-4)
    for _ in range(3):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            loss = sum((p * torch.arange(p.numel()).reshape(p.shape)).sum() ** 2 for p in model.parameters()
                       if p.requires_grad)
            loss.backward()
            opt.step()
    for (na, pa), (_nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=na)


def test_make_optimizer_from_cfg():
    cfg = _cfg(OPTIMIZER="ADAMW", BASE_LR=1e-4, LANG_LR=1e-5, WEIGHT_DECAY=0.01)
    opt = make_optimizer(cfg, Named())
    assert isinstance(opt, torch.optim.AdamW)
    lang = [g for g in opt.param_groups if "fusion_backbone.language_backbone.body.dense.weight" in g["names"]][0]
    assert lang["lr"] == pytest.approx(1e-5) and lang["weight_decay"] == pytest.approx(0.01)
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    cfg = _cfg(OPTIMIZER="SGD", MOMENTUM=0.8)
    opt = make_optimizer(cfg, Named())
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.8
    with pytest.raises(ValueError, match="LAMB"):
        make_optimizer(_cfg(OPTIMIZER="LAMB"), Named())


def _opt(lr=1.0, wd=0.1):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr, weight_decay=wd)


def _lrs(scheduler, iterations):
    out = []
    for _ in range(iterations):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_warmup_multistep_values():
    sched = WarmupMultiStepLR(_opt(), milestones=[6, 8], gamma=0.1, warmup_factor=0.001, warmup_iters=4,
                              warmup_method="linear")
    lrs = _lrs(sched, 10)
    expected = [0.001 * (1 - i / 4) + i / 4 for i in range(4)] + [1, 1, 0.1, 0.1, 0.01, 0.01]
    assert lrs == pytest.approx(expected)
    const = WarmupMultiStepLR(_opt(), milestones=[3], warmup_factor=0.25, warmup_iters=2, warmup_method="constant")
    assert _lrs(const, 4) == pytest.approx([0.25, 0.25, 1.0, 0.1])
    with pytest.raises(ValueError, match="increasing"):
        WarmupMultiStepLR(_opt(), milestones=[5, 2])
    with pytest.raises(ValueError, match="WARMUP_METHOD"):
        WarmupMultiStepLR(_opt(), milestones=[5], warmup_method="exp")


def test_milestones_from_fractions():
    assert resolve_milestones((0.67, 0.89), 800000) == [536000, 712000]
    assert resolve_milestones((30000,), 40000) == [30000]
    with pytest.raises(ValueError, match="non-increasing"):
        resolve_milestones((0.9, 0.5), 100)


def test_weight_decay_schedule_drop_points():
    """Pre-training: WD x GAMMA from 0.667 x each milestone (357,512 and 474,904 for 800k iterations)."""
    opt = _opt(wd=0.01)
    milestones = resolve_milestones((0.67, 0.89), 800000)
    sched = WarmupMultiStepLR(opt, milestones, gamma=0.1, warmup_iters=2000, warmup_factor=0.001,
                              weight_decay_schedule_ratio=0.667)
    assert sched.weight_decay_factor(357511) == 1.0
    assert sched.weight_decay_factor(357512) == pytest.approx(0.1)
    assert sched.weight_decay_factor(474903) == pytest.approx(0.1)
    assert sched.weight_decay_factor(474904) == pytest.approx(0.01)
    small = WarmupMultiStepLR(_opt(wd=0.5), [6, 9], gamma=0.1, warmup_iters=0, weight_decay_schedule_ratio=0.5)
    wds = []
    for _ in range(8):
        wds.append(small.optimizer.param_groups[0]["weight_decay"])
        small.optimizer.step()
        small.step()
    assert wds == pytest.approx([0.5, 0.5, 0.5, 0.05, 0.05, 0.005, 0.005, 0.005])  # drops at 3 and 4.5 -> 5
    # Without the schedule the weight decay never changes.
    plain = WarmupMultiStepLR(_opt(wd=0.5), [2], warmup_iters=0)
    _lrs(plain, 5)
    assert plain.optimizer.param_groups[0]["weight_decay"] == 0.5


def test_cosine_end_value():
    sched = WarmupCosineAnnealingLR(_opt(lr=2.0), max_iters=20, warmup_factor=0.1, warmup_iters=4, eta_min=0.01)
    lrs = _lrs(sched, 21)
    assert lrs[0] == pytest.approx(0.2)
    assert lrs[4] == pytest.approx(2.0)
    assert lrs[12] == pytest.approx(0.01 + (2.0 - 0.01) * 0.5)
    assert lrs[20] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_plateau_warmup_then_reduce():
    sched = WarmupReduceLROnPlateau(_opt(lr=1.0), gamma=0.1, warmup_factor=0.5, warmup_iters=2, patience=1)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    sched.step()
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.75)
    sched.step()
    sched.step()
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    sched.step_metric(0.0)   # upstream would ignore a 0.0 metric
    sched.step_metric(0.0)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    sched.step_metric(0.0)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    sched.step_metric(0.3)  # improvement: no change
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


@pytest.mark.parametrize("kind", ["multistep", "cosine", "plateau"])
def test_scheduler_state_round_trip(kind):
    def build(opt):
        if kind == "multistep":
            return WarmupMultiStepLR(opt, [5, 7], warmup_iters=3, weight_decay_schedule_ratio=0.667)
        if kind == "cosine":
            return WarmupCosineAnnealingLR(opt, max_iters=12, warmup_iters=3, eta_min=0.0)
        return WarmupReduceLROnPlateau(opt, warmup_iters=3, patience=0)

    opt = _opt()
    sched = build(opt)
    for i in range(6):
        opt.step()
        sched.step()
        if kind == "plateau" and i >= 3:
            sched.step_metric(1.0 - i)
    state_o, state_s = opt.state_dict(), sched.state_dict()
    reference = _lrs(sched, 4)
    opt2 = _opt(lr=5.0)
    sched2 = build(opt2)
    opt2.load_state_dict(state_o)
    sched2.load_state_dict(state_s)
    assert _lrs(sched2, 4) == pytest.approx(reference)


def test_make_lr_scheduler_from_cfg():
    opt = _opt()
    sched = make_lr_scheduler(_cfg(MAX_ITER=1000, STEPS=(0.67, 0.89), WARMUP_ITERS=10), opt)
    assert isinstance(sched, WarmupMultiStepLR) and sched.milestones == [670, 890]
    assert sched.weight_decay_schedule_ratio is None
    sched = make_lr_scheduler(_cfg(MAX_ITER=1000, STEPS=(0.67,), WEIGHT_DECAY_SCHEDULE=True), _opt())
    assert sched.weight_decay_schedule_ratio == pytest.approx(0.667)
    assert isinstance(make_lr_scheduler(_cfg(USE_COSINE=True, MAX_ITER=1000), _opt()), WarmupCosineAnnealingLR)
    plateau = make_lr_scheduler(_cfg(USE_AUTOSTEP=True, STEP_PATIENCE=3, WARMUP_ITERS=0), _opt())
    assert isinstance(plateau, WarmupReduceLROnPlateau) and plateau.patience == 3 and plateau.mode == "max"


def test_gradient_clipping():
    assert gradient_clip_settings(_cfg()) is None
    assert gradient_clip_settings(_cfg(GRAD_CLIP=5.0)) == (5.0, 2.0)
    assert gradient_clip_settings(_cfg(CLIP_GRADIENTS__ENABLED=True, CLIP_GRADIENTS__CLIP_VALUE=1.0)) == (1.0, 2.0)
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        gradient_clip_settings(_cfg(CLIP_GRADIENTS__ENABLED=True, CLIP_GRADIENTS__CLIP_TYPE="value",
                                    CLIP_GRADIENTS__CLIP_VALUE=1.0))
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    norm = clip_gradients([a, b], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    total = math.sqrt(float(a.grad.pow(2).sum() + b.grad.pow(2).sum()))
    assert total == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(a.grad, torch.tensor([0.6, 0.0]), rtol=1e-4, atol=1e-6)


def test_make_model_ema_switch():
    assert make_model_ema(_cfg(MODEL_EMA=0.0), nn.Linear(1, 1)) is None
    assert make_model_ema(_cfg(MODEL_EMA=0.999), nn.Linear(1, 1)).decay == 0.999
