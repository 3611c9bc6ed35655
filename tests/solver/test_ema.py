"""ModelEMA: the averaging math, integer buffers, state round trip, evaluation switch."""

import pytest
import torch
from torch import nn

from maskrcnn_benchmark.solver.ema import ModelEMA, evaluation_model


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("relative_position_index", torch.tensor([[0, 5], [7, 3]], dtype=torch.int64))
        self.register_buffer("running", torch.zeros(2))


def test_ema_math_over_steps():
    torch.manual_seed(0)
    model = Net()
    ema = ModelEMA(model, decay=0.9)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for _step in range(5):
        with torch.no_grad():
            model.lin.weight.add_(torch.randn_like(model.lin.weight))
            model.running.add_(1.0)
        ema.update(model)
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                expected[key] = 0.9 * expected[key] + 0.1 * value
    for key, value in ema.state_dict().items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(value, expected[key], rtol=1e-6, atol=1e-6)
    assert ema.updates == 5
    assert all(not p.requires_grad for p in ema.module.parameters()) and not ema.module.training


def test_integer_buffers_copied_not_averaged():
    model = Net()
    ema = ModelEMA(model, decay=0.999)
    model.relative_position_index.copy_(torch.tensor([[1, 9], [8, 2]]))
    ema.update(model)
    assert ema.module.relative_position_index.dtype == torch.int64
    assert torch.equal(ema.module.relative_position_index, model.relative_position_index)


def test_ema_of_ddp_like_wrapper_and_state_round_trip():
    torch.manual_seed(1)
    model = Net()
    wrapper = nn.Module()
    wrapper.module = model
    ema = ModelEMA(wrapper, decay=0.5)
    assert set(ema.state_dict()) == set(model.state_dict())  # no "module." prefix
    with torch.no_grad():
        model.lin.bias.fill_(2.0)
    ema.update(wrapper)
    saved = {"module." + k: v.clone() for k, v in ema.state_dict().items()}  # upstream's key style
    other = ModelEMA(Net(), decay=0.5)
    other.load_state_dict(saved)
    for key, value in ema.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    other.set_from(model)
    assert torch.equal(other.module.lin.bias, model.lin.bias)


def test_decay_validation_and_evaluation_switch():
    with pytest.raises(ValueError, match="MODEL_EMA"):
        ModelEMA(Net(), decay=1.0)
    model = Net()
    ema = ModelEMA(model, 0.9)
    assert evaluation_model(model, ema, use_ema_weights=False) is model
    assert evaluation_model(model, ema, use_ema_weights=True) is ema.module
    assert evaluation_model(model, None, use_ema_weights=False) is model
    with pytest.raises(ValueError, match="USE_EMA_WEIGHTS"):
        evaluation_model(model, None, use_ema_weights=True)
