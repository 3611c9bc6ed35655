"""do_train: exact resume, skip rule, non-finite loss, clipping, AMP, validation/best model/auto-termination, logs."""

import json
import os

import pytest
import torch
from _trainer_standins import (
    NoisyDataset,
    PlainCheckpointer,
    SimpleEma,
    StepScheduler,
    TinyRegressor,
    make_cfg,
    make_loader,
)

from maskrcnn_benchmark.engine.trainer import amp_settings, do_train, resolve_checkpoint_period
from maskrcnn_benchmark.utils.miscellaneous import seed_all


class Interrupt(Exception):
    pass


def _build(cfg, start_iter=0, dataset=None, ema=False):
    seed_all(0)
    model = TinyRegressor()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    scheduler = StepScheduler(optimizer)
    dataset = dataset or NoisyDataset()
    loader = make_loader(dataset, cfg.SOLVER.MAX_ITER, start_iter)
    checkpointer = PlainCheckpointer(model, optimizer, scheduler, cfg.OUTPUT_DIR)
    model_ema = SimpleEma(model) if ema else None
    return model, optimizer, scheduler, loader, checkpointer, model_ema


def _train(cfg, arguments=None, start_iter=0, dataset=None, validator=None, ema=False, **kwargs):
    model, optimizer, scheduler, loader, checkpointer, model_ema = _build(cfg, start_iter, dataset, ema)
    arguments = arguments if arguments is not None else {"iteration": 0}
    summary = do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu",
                       resolve_checkpoint_period(cfg, cfg.SOLVER.MAX_ITER), arguments, validator=validator,
                       model_ema=model_ema, **kwargs)
    return model, checkpointer, summary, model_ema


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    cfg_full = make_cfg(str(tmp_path / "full"), max_iter=12)
    os.makedirs(cfg_full.OUTPUT_DIR)
    full_model, _, _, full_ema = _train(cfg_full, ema=True)

    cfg = make_cfg(str(tmp_path / "resumed"), max_iter=12)
    os.makedirs(cfg.OUTPUT_DIR)

    # First run dies during iteration 7 (after the checkpoint at 4 and before the one at 8).
    model, optimizer, scheduler, loader, checkpointer, ema = _build(cfg, ema=True)
    original_forward = model.forward

    def dying_forward(*args, **kwargs):
        if model.calls == 6:
            raise Interrupt()
        return original_forward(*args, **kwargs)

    model.forward = dying_forward
    with pytest.raises(Interrupt):
        do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 4, {"iteration": 0}, model_ema=ema)

    # Relaunch: fresh objects with a different RNG history, state from the last checkpoint.
    torch.manual_seed(1234)
    model, optimizer, scheduler, _, checkpointer, ema = _build(cfg, ema=True)
    torch.rand(17)
    extras = checkpointer.load_last()
    assert extras["iteration"] == 4
    loader = make_loader(NoisyDataset(), cfg.SOLVER.MAX_ITER, start_iter=extras["iteration"])
    summary = do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 4, dict(extras), model_ema=ema)
    assert summary["iteration"] == 12
    for (name, a), b in zip(full_model.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"parameter {name} differs after resume")
    for a, b in zip(full_ema.state_dict().values(), ema.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoints_metrics_and_tensorboard_written(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=8)
    _, checkpointer, summary, _ = _train(cfg, log_period=2, use_tensorboard=True)
    assert checkpointer.saved == ["model_0000004", "model_final"]
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [row["iteration"] for row in rows] == [2, 4, 6, 8]
    assert {"train/loss_a", "train/loss_b", "train/loss", "train/lr"} <= set(rows[0])
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tensorboard"))
    assert summary["iteration"] == 8


def test_batches_with_empty_images_are_skipped(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=5)
    # Every sample has no box: every batch is skipped, the weights never move, iterations still count.
    dataset = NoisyDataset(empty=range(10))
    seed_all(0)
    reference = TinyRegressor().state_dict()
    model, _, summary, _ = _train(cfg, dataset=dataset)
    assert model.calls == 0
    assert summary["iteration"] == 5
    for a, b in zip(reference.values(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_non_finite_loss_stops_training_naming_terms(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=5)
    model, optimizer, scheduler, loader, checkpointer, _ = _build(cfg)
    original = model.forward

    def nan_forward(*args, **kwargs):
        losses = original(*args, **kwargs)
        if model.calls == 3:
            losses["loss_b"] = losses["loss_b"] * float("nan")
        return losses

    model.forward = nan_forward
    seen = []
    with pytest.raises(FloatingPointError, match=r"iteration 2: .*loss_b=nan"):
        do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 100, {"iteration": 0},
                 on_nan=seen.append)
    assert seen == [2]


def test_gradient_clipping_bounds_the_update(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=3)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1e-3
    model, optimizer, scheduler, loader, checkpointer, _ = _build(cfg)
    norms = []
    clip = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, norm_type=2.0):
        total = clip(params, max_norm, norm_type=norm_type)
        norms.append(float(torch.norm(torch.stack([p.grad.norm() for p in model.parameters()]))))
        return total

    torch.nn.utils.clip_grad_norm_ = spy
    try:
        do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 100, {"iteration": 0})
    finally:
        torch.nn.utils.clip_grad_norm_ = clip
    assert len(norms) == 3 and max(norms) <= 1e-3 * 1.01


def test_bfloat16_autocast_on_cpu_and_fp16_falls_back(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=3)
    cfg.SOLVER.USE_AMP = True
    assert not amp_settings(cfg, torch.device("cpu")).enabled  # float16 on CPU -> fp32 with a warning
    cfg.SOLVER.AMP_DTYPE = "bfloat16"
    settings = amp_settings(cfg, torch.device("cpu"))
    assert settings.enabled and not settings.needs_scaler
    _, _, summary, _ = _train(cfg)
    assert summary["iteration"] == 3 and all(v == v for v in summary["meters"].values())
    cfg.SOLVER.AMP_DTYPE = "half-ish"
    with pytest.raises(ValueError, match="AMP_DTYPE"):
        amp_settings(cfg, torch.device("cpu"))


def test_validation_tracks_best_and_auto_terminates(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=40)
    cfg.SOLVER.CHECKPOINT_PERIOD = 2
    cfg.SOLVER.AUTO_TERMINATE_PATIENCE = 2
    cfg.SOLVER.USE_AUTOSTEP = True
    metrics = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    seen = []

    def validator(model, iteration):
        assert not model.training
        seen.append(iteration)
        return next(metrics)

    def eval_validator(model, iteration):
        model.eval()
        return validator(model, iteration)

    plateau = []

    class PlateauAware(StepScheduler):
        def step_metric(self, metric):
            plateau.append(metric)

    model, optimizer, _, loader, _, _ = _build(cfg)
    scheduler = PlateauAware(optimizer)
    checkpointer = PlainCheckpointer(model, optimizer, scheduler, cfg.OUTPUT_DIR)
    summary = do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 2, {"iteration": 0},
                       validator=eval_validator)
    # 0.1 best, 0.3 best, 0.2 (1 bad), 0.25 (2 bad) -> stop at iteration 8.
    assert seen == [2, 4, 6, 8]
    assert plateau == [0.1, 0.3, 0.2, 0.25]
    assert summary["terminated"] and summary["best_metric"] == 0.3 and summary["iteration"] == 8
    assert checkpointer.saved == ["model_best", "model_0000002", "model_best", "model_0000004", "model_0000006",
                                  "model_final"]
    best = torch.load(tmp_path / "model_best.pth", weights_only=True)
    assert best["iteration"] == 4 and best["best_metric"] == 0.3
    # A relaunch after auto-termination does not train again.
    final = torch.load(tmp_path / "model_final.pth", weights_only=True)
    model, _, summary2, _ = _train(cfg, arguments={k: final[k] for k in ("iteration", "terminated", "best_metric")})
    assert model.calls == 0 and summary2["iteration"] == 8


def test_checkpoint_period_from_epochs():
    cfg = make_cfg("unused")
    assert resolve_checkpoint_period(cfg, 1000) == 4
    cfg.SOLVER.MAX_EPOCH = 12
    cfg.SOLVER.CHECKPOINT_PER_EPOCH = 1.0
    assert resolve_checkpoint_period(cfg, 1200) == 100
    cfg.SOLVER.CHECKPOINT_PER_EPOCH = 0.001
    assert resolve_checkpoint_period(cfg, 12) == 1


def test_resume_after_a_kill_past_a_metrics_row_logs_each_iteration_once(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=10)
    model, optimizer, scheduler, loader, checkpointer, _ = _build(cfg)
    original_forward = model.forward

    def dying_forward(*args, **kwargs):
        if model.calls == 6:  # rows 5 and 6 are written after the checkpoint at 4, then the run dies
            raise Interrupt()
        return original_forward(*args, **kwargs)

    model.forward = dying_forward
    with pytest.raises(Interrupt):
        do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 4, {"iteration": 0}, log_period=1)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"iteration": 7, "train/lo')  # and the kill cut a row short
    assert [json.loads(line)["iteration"] for line in open(tmp_path / "metrics.jsonl")
            if line.endswith("\n")] == [1, 2, 3, 4, 5, 6]

    model, optimizer, scheduler, _, checkpointer, _ = _build(cfg)
    extras = checkpointer.load_last()
    loader = make_loader(NoisyDataset(), cfg.SOLVER.MAX_ITER, start_iter=extras["iteration"])
    do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 4, dict(extras), log_period=1)
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [row["iteration"] for row in rows] == list(range(1, 11))


def test_non_finite_gradient_stops_before_the_step_naming_the_parameter(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=6)
    model, optimizer, scheduler, loader, checkpointer, _ = _build(cfg)
    hook_calls = []

    def poison(grad):  # a finite loss whose backward yields NaN in one parameter's gradient
        hook_calls.append(1)
        return grad * float("nan") if len(hook_calls) == 3 else grad

    model.body[3].weight.register_hook(poison)
    seen = []
    with pytest.raises(FloatingPointError, match=r"non-finite gradient at iteration 2 \(total norm nan\): first "
                                                 r"in body.3.weight; the weights were not updated"):
        do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 1, {"iteration": 0},
                 on_nan=seen.append)
    assert seen == [2]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert checkpointer.saved == ["model_0000001", "model_0000002"]


def test_non_finite_weights_stop_training_before_a_save(tmp_path):
    cfg = make_cfg(str(tmp_path), max_iter=8)
    model, optimizer, scheduler, loader, checkpointer, _ = _build(cfg)

    def overflow(optimizer, args, kwargs):  # finite gradients, but the last update overflows one weight
        if model.calls == 8:
            with torch.no_grad():
                model.body[0].bias[1] = float("inf")

    optimizer.register_step_post_hook(overflow)
    with pytest.raises(FloatingPointError, match=r"iteration 8: not writing model_final.pth .*first body.0.bias"):
        do_train(cfg, model, loader, optimizer, scheduler, checkpointer, "cpu", 4, {"iteration": 0})
    assert checkpointer.saved == ["model_0000004"]


def test_settings_come_from_the_config_and_the_trainer_takes_named_arguments(tmp_path):
    from maskrcnn_benchmark.engine.trainer import TrainSettings, _Trainer
    from maskrcnn_benchmark.utils.training_state import TrainingState

    cfg = make_cfg(str(tmp_path), max_iter=30)
    cfg.SOLVER.MAX_NEG_PER_BATCH = 0.3
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 2.5
    cfg.SOLVER.AUTO_TERMINATE_PATIENCE = 3
    settings = TrainSettings.from_config(cfg, "cpu", log_period=5)
    assert (settings.max_iter, settings.checkpoint_period, settings.log_period) == (30, 4, 5)
    assert settings.max_neg_fraction == 0.3 and settings.clip == (2.5, 2.0) and settings.patience_limit == 3
    assert settings.output_dir == str(tmp_path) and not settings.amp.enabled
    model, optimizer, scheduler, loader, _, _ = _build(cfg)
    state = TrainingState(model, optimizer, scheduler)
    with pytest.raises(TypeError):
        _Trainer(model, state, loader, settings)  # keyword arguments only
    trainer = _Trainer(model=model, state=state, data_loader=loader, settings=settings)
    assert trainer.run()["iteration"] == 30 and state.progress.iteration == 30
