"""The one config loader: pristine defaults, task configs in order, opts once and last, the global cfg untouched."""

from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.config import cfg as global_cfg
from maskrcnn_benchmark.config import clean_opts, load_config

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"


@pytest.fixture
def dirty_global_cfg():
    """A user script in upstream's style that edits the process-wide cfg (restored afterwards)."""
    saved = global_cfg.clone()
    global_cfg.defrost()
    global_cfg.MODEL.ATSS.INFERENCE_TH = 0.9
    global_cfg.TEST.SUBSET = 7
    yield global_cfg
    global_cfg.merge_from_other_cfg(saved)


def test_edits_to_the_global_cfg_do_not_reach_the_loader(dirty_global_cfg):
    loaded = load_config(str(TINY))
    assert loaded.MODEL.ATSS.INFERENCE_TH == 0.05 and loaded.TEST.SUBSET == -1  # the defaults
    assert loaded is not dirty_global_cfg


def test_edits_to_the_global_cfg_do_not_reach_the_predictor(dirty_global_cfg):
    from maskrcnn_benchmark.engine.predictor import Predictor

    predictor = Predictor(str(TINY), model=torch.nn.Identity(), device="cpu")
    assert predictor.cfg.MODEL.ATSS.INFERENCE_TH == 0.05
    with_opts = Predictor(str(TINY), model=torch.nn.Identity(), device="cpu", opts=["MODEL.ATSS.INFERENCE_TH", "0.3"])
    assert with_opts.cfg.MODEL.ATSS.INFERENCE_TH == 0.3


def test_the_loader_never_writes_the_global_cfg():
    before = global_cfg.dump()
    loaded = load_config(str(TINY), ["MODEL.ATSS.INFERENCE_TH", "0.4"])
    assert loaded.MODEL.ATSS.INFERENCE_TH == 0.4 and loaded.MODEL.SWINT.EMBED_DIM != global_cfg.MODEL.SWINT.EMBED_DIM
    assert global_cfg.dump() == before


def test_task_configs_merge_in_order_and_opts_win(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text("MODEL:\n  ATSS:\n    INFERENCE_TH: 0.3\n    NMS_TH: 0.5\nTEST:\n  IMS_PER_BATCH: 2\n")
    second = tmp_path / "second.yaml"
    second.write_text("MODEL:\n  ATSS:\n    NMS_TH: 0.7\n")
    merged = load_config(TINY, ["MODEL.ATSS.INFERENCE_TH", "0.2"], task_configs=[first, second])
    assert merged.MODEL.ATSS.INFERENCE_TH == 0.2  # the command line wins over the task config
    assert merged.MODEL.ATSS.NMS_TH == 0.7 and merged.TEST.IMS_PER_BATCH == 2
    assert load_config(TINY, task_configs=str(first)).MODEL.ATSS.INFERENCE_TH == 0.3  # one path works too
    assert not merged.is_frozen() and load_config(TINY, freeze=True).is_frozen()


def test_validation_runs_after_every_merge(tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text("TEST:\n  CHUNKED_EVALUATION: 0\n")
    with pytest.raises(ValueError, match="TEST.CHUNKED_EVALUATION must be -1"):
        load_config(TINY, task_configs=[task])
    # ... and the command line can repair what a task config broke.
    assert load_config(TINY, ["TEST.CHUNKED_EVALUATION", "40"], task_configs=[task]).TEST.CHUNKED_EVALUATION == 40


def test_shell_artefacts_are_cleaned_and_bad_input_is_named(tmp_path):
    assert clean_opts(["--", "A.B", "1", "\\", " ", "C.D", ""]) == ["A.B", "1", "C.D", ""]
    assert clean_opts(None) == []
    loaded = load_config(TINY, ["TEST.IMS_PER_BATCH", "2", "\\", "MODEL.WEIGHT", ""])
    assert loaded.TEST.IMS_PER_BATCH == 2 and loaded.MODEL.WEIGHT == ""
    with pytest.raises(ValueError, match="KEY VALUE pairs; got an odd number of items: \\['TEST.IMS_PER_BATCH'\\]"):
        load_config(TINY, ["TEST.IMS_PER_BATCH", "\\"])
    with pytest.raises(ValueError, match="no config file given"):
        load_config("")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(TINY, task_configs=[tmp_path / "nope.yaml"])
