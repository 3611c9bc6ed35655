"""Smoothed meters used by the training log."""

import pytest
import torch

from maskrcnn_benchmark.utils.metric_logger import MetricLogger, SmoothedValue


def test_smoothed_value_window_and_global():
    meter = SmoothedValue(window_size=3)
    for value in [1, 2, 3, 10]:
        meter.update(value)
    assert meter.median == 3.0  # window [2, 3, 10]
    assert meter.avg == 5.0
    assert meter.global_avg == 4.0
    assert meter.value == 10.0
    with pytest.raises(ValueError):
        SmoothedValue(0)


def test_metric_logger_update_and_str():
    logger = MetricLogger(delimiter=" | ")
    logger.update(loss=torch.tensor(2.0), lr=0.1)
    logger.update(loss=4.0)
    assert logger.loss.global_avg == 3.0
    assert str(logger).startswith("loss: 2.0000 (3.0000) | lr: 0.1000")
    assert logger.medians(["loss", "missing"]) == {"loss": 2.0}
    with pytest.raises(ValueError, match="scalar"):
        logger.update(bad=torch.ones(2))
    with pytest.raises(TypeError):
        logger.update(bad="x")
    with pytest.raises(AttributeError):
        _ = logger.nothing
