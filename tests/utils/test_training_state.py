"""TrainingState: the one place a checkpoint's training state is written and read back; DetectronCheckpointer on top."""

import logging
import math
import os

import pytest
import torch
from torch import nn

from maskrcnn_benchmark.config import get_cfg
from maskrcnn_benchmark.solver import make_lr_scheduler, make_optimizer
from maskrcnn_benchmark.solver.ema import ModelEMA
from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer, load_checkpoint_file
from maskrcnn_benchmark.utils.training_state import (
    NonFiniteError,
    OptimizerMismatchError,
    TrainingState,
    TrainProgress,
    non_finite_tensors,
)

UPSTREAM_KEYS = {"model", "optimizer", "scheduler", "iteration"}


class _Detector(nn.Module):
    """Parameter names that the optimizer's group rules tell apart (language_backbone, bias, norm)."""

    def __init__(self):
        super().__init__()
        self.language_backbone = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)
        self.norm = nn.LayerNorm(2)

    def forward(self, x):
        return self.norm(self.head(self.language_backbone(x)))


def _cfg(**solver):
    cfg = get_cfg()
    cfg.SOLVER.MAX_ITER = 40
    cfg.SOLVER.WARMUP_ITERS = 5
    cfg.SOLVER.STEPS = (0.5,)
    for key, value in solver.items():
        cfg.SOLVER[key] = value
    return cfg


def _state(cfg, seed=0, ema=False):
    torch.manual_seed(seed)
    model = _Detector()
    optimizer = make_optimizer(cfg, model)
    return TrainingState(model, optimizer, make_lr_scheduler(cfg, optimizer),
                         ema=ModelEMA(model, 0.5) if ema else None, config=cfg)


def _train(state, steps):
    for _ in range(steps):
        state.optimizer.zero_grad()
        state.model(torch.randn(4, 3)).pow(2).sum().backward()
        state.optimizer.step()
        state.scheduler.step()
        if state.ema is not None:
            state.ema.update(state.model)
        state.progress.iteration += 1


def _lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


def test_checkpoint_layout_keeps_upstream_keys_and_round_trips(tmp_path):
    cfg = _cfg()
    state = _state(cfg, ema=True)
    state.scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    _train(state, 7)
    state.progress.best_metric, state.progress.patience = 0.25, 2
    wrapped = nn.DataParallel(state.model)
    saver = DetectronCheckpointer(cfg, wrapped, state.optimizer, state.scheduler, str(tmp_path), ema=state.ema,
                                  scaler=state.scaler)
    path = saver.save("model_0000007", **state.resume_entries())
    data = load_checkpoint_file(path)
    assert UPSTREAM_KEYS <= set(data) and data["iteration"] == 7
    assert {"model_ema", "scaler", "rng_state", "best_metric", "patience", "terminated", "config"} <= set(data)
    assert set(data["model"]) == set(state.model.state_dict())  # unwrapped: no "module."
    assert "LANG_LR" in data["config"]
    draws = torch.rand(2)

    resumed = _state(cfg, seed=1, ema=True)
    resumed.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    loader = DetectronCheckpointer(cfg, resumed.model, resumed.optimizer, resumed.scheduler, str(tmp_path),
                                   ema=resumed.ema, scaler=resumed.scaler)
    loader.load()
    got = loader.state
    assert got.progress == TrainProgress(iteration=7, best_metric=0.25, patience=2, terminated=False)
    assert got.scaler.get_scale() == 8.0 and _lrs(got.optimizer) == _lrs(state.optimizer)
    assert got.scheduler.state_dict() == state.scheduler.state_dict()
    for a, b in zip(got.ema.state_dict().values(), state.ema.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    got.restore_rng()
    torch.testing.assert_close(torch.rand(2), draws, rtol=0, atol=0)
    got.restore_rng()  # applied once: a second call is a no-op
    assert not torch.equal(torch.rand(2), draws)


def test_old_checkpoints_without_new_entries_still_resume(tmp_path):
    """A file of upstream's layout (no counters but iteration, no config, no RNG) resumes with defaults."""
    cfg = _cfg()
    state = _state(cfg)
    _train(state, 3)
    path = tmp_path / "model_0000003.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.model.state_dict().items()},
                "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
                "iteration": 3}, path)
    (tmp_path / "last_checkpoint").write_text(str(path))
    resumed = _state(cfg, seed=5)
    checkpointer = DetectronCheckpointer(cfg, resumed.model, resumed.optimizer, resumed.scheduler, str(tmp_path))
    checkpointer.load()
    assert checkpointer.state.progress == TrainProgress(iteration=3)
    assert checkpointer.state.pending_rng is None
    assert _lrs(resumed.optimizer) == _lrs(state.optimizer)


def test_non_finite_tensors_in_order():
    tensors = {"a": torch.ones(2), "steps": torch.tensor(3), "b": torch.tensor([1.0, math.inf]),
               "c": torch.tensor([math.nan])}
    assert non_finite_tensors(tensors) == ["b", "c"]
    assert non_finite_tensors({"a": torch.ones(1)}) == []


def test_non_finite_weights_are_never_written_nor_pointed_at(tmp_path):
    cfg = _cfg()
    state = _state(cfg, ema=True)
    checkpointer = DetectronCheckpointer(cfg, state.model, state.optimizer, state.scheduler, str(tmp_path),
                                         ema=state.ema)
    good = checkpointer.save("model_0000001", iteration=1)
    with torch.no_grad():
        state.ema.module.head.bias[0] = math.nan
    with pytest.raises(NonFiniteError, match=r"iteration 2: not writing .*model_0000002.pth: 1 of 6 model_ema "
                                             r"tensors are NaN or infinite, first head.bias"):
        checkpointer.save("model_0000002", iteration=2)
    state.ema.set_from(state.model)
    with torch.no_grad():
        state.model.head.weight[0, 0] = -math.inf
    with pytest.raises(NonFiniteError, match="model tensors are NaN or infinite, first head.weight"):
        checkpointer.save("model_final")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert checkpointer.get_checkpoint_file() == good


def _resume(tmp_path, cfg, skip_optimizer=False):
    state = _state(cfg, seed=3)
    checkpointer = DetectronCheckpointer(cfg, state.model, state.optimizer, state.scheduler, str(tmp_path))
    checkpointer.load(skip_optimizer=skip_optimizer)
    return checkpointer.state


def _saved_run(tmp_path, cfg, steps=12):
    state = _state(cfg)
    _train(state, steps)
    DetectronCheckpointer(cfg, state.model, state.optimizer, state.scheduler, str(tmp_path)).save(
        f"model_{steps:07d}", **state.resume_entries())
    return state


def test_changed_parameter_groups_name_the_config_keys_and_the_way_out(tmp_path):
    _saved_run(tmp_path, _cfg(BASE_LR=0.01, LANG_LR=0.001))
    with pytest.raises(OptimizerMismatchError) as error:
        _resume(tmp_path, _cfg(BASE_LR=0.01, LANG_LR=0.01))  # language groups merge into the others
    message = str(error.value)
    assert "\n" not in message
    assert "SOLVER.LANG_LR (0.001 -> 0.01)" in message and "SOLVER.BASE_LR" not in message
    assert "checkpoint: 4 group(s)" in message and "config: 2 group(s)" in message
    assert "--skip_optimizer_resume" in message


def test_fresh_optimizer_resume_keeps_weights_and_continues_the_schedule(tmp_path):
    saved = _saved_run(tmp_path, _cfg(BASE_LR=0.01, LANG_LR=0.001))
    new_cfg = _cfg(BASE_LR=0.01, LANG_LR=0.01)
    state = _resume(tmp_path, new_cfg, skip_optimizer=True)
    assert state.progress.iteration == 12
    for a, b in zip(state.model.state_dict().values(), saved.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not state.optimizer.state  # no moments restored
    # The schedule is where a run with the new config would be at iteration 12 (not back in warm-up).
    reference = _state(new_cfg)
    _train(reference, 12)
    assert _lrs(state.optimizer) == pytest.approx(_lrs(reference.optimizer), rel=1e-12)
    assert state.scheduler.last_epoch == 12


def test_changed_rates_that_keep_the_groups_resume_with_a_warning(tmp_path, caplog):
    saved = _saved_run(tmp_path, _cfg(BASE_LR=0.01, LANG_LR=0.001))
    with caplog.at_level(logging.WARNING, logger="maskrcnn_benchmark.utils.training_state"):
        state = _resume(tmp_path, _cfg(BASE_LR=0.01, LANG_LR=0.003))
    assert _lrs(state.optimizer) == _lrs(saved.optimizer)  # torch restores the saved rates
    assert "SOLVER.LANG_LR (0.001 -> 0.003) changed since this checkpoint" in caplog.text
    assert "--skip_optimizer_resume" in caplog.text


def test_ema_restarts_from_loaded_initial_weights(tmp_path):
    """Fine-tuning from MODEL.WEIGHT with EMA on: the average starts at the loaded weights, not at random init."""
    pretrained = _state(_cfg(), seed=7).model
    path = tmp_path / "pretrained.pth"
    torch.save({"model": pretrained.state_dict()}, path)
    state = _state(_cfg(), seed=0, ema=True)
    DetectronCheckpointer(None, state.model, state.optimizer, ema=state.ema, save_dir=str(tmp_path / "run")).load(
        str(path))
    for a, b in zip(state.ema.state_dict().values(), pretrained.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_first_save_removes_temp_files_that_killed_saves_left(tmp_path):
    cfg = _cfg()
    state = _state(cfg)
    (tmp_path / ".model_0000004.pth.k3j4h5g6.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".bbox.json.k3j4h5g6.tmp").write_text("another writer's")
    DetectronCheckpointer(cfg, state.model, save_dir=str(tmp_path)).save("model_0000005")
    assert sorted(os.listdir(tmp_path)) == [".bbox.json.k3j4h5g6.tmp", "last_checkpoint", "model_0000005.pth"]
