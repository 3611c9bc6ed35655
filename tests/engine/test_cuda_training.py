"""CUDA: the tiny model trains under fp16 autocast with a GradScaler whose state lands in the checkpoint."""

from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.engine.trainer import amp_settings

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "fiber_tiny.yaml"

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_fp16_amp_training_on_gpu(tmp_path, bpe_tokenizer_dir, monkeypatch):
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.data.synthetic import write_coco
    from maskrcnn_benchmark.engine.runner import train

    write_coco(str(tmp_path / "data"), seed=0, num_images=4)
    monkeypatch.setenv("DATASET", str(tmp_path / "data"))
    cfg = load_config(str(TINY), [
        "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir, "MODEL.DEVICE", "cuda",
        "OUTPUT_DIR", str(tmp_path / "out"), "DATASETS.TRAIN", '("coco_grounding_train",)',
        "SOLVER.USE_AMP", "True", "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.MODEL_EMA", "0.9"], freeze=True)
    settings = amp_settings(cfg, torch.device("cuda"))
    assert settings.enabled and settings.needs_scaler
    _, summary = train(cfg, False, torch.device("cuda"))
    assert summary["iteration"] == 4
    assert all(v == v and abs(v) < 1e4 for v in summary["meters"].values())
    checkpoint = torch.load(tmp_path / "out" / "model_final.pth", map_location="cpu", weights_only=True)
    assert checkpoint["scaler"]["scale"] > 0 and "model_ema" in checkpoint and checkpoint["iteration"] == 4
