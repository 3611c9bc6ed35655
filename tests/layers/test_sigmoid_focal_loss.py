"""Sigmoid focal losses: compiled vs pure torch vs a Python reference, gradcheck, masks, dtypes."""

import importlib
import math

import pytest
import torch

from maskrcnn_benchmark.layers import (
    SigmoidFocalLoss,
    TokenSigmoidFocalLoss,
    sigmoid_focal_loss,
    token_sigmoid_focal_loss,
)


def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def reference_multiclass(logits, targets, gamma, alpha):
    rows = []
    for row, t in zip(logits.double().tolist(), targets.tolist()):
        out = []
        for k, x in enumerate(row, start=1):
            p = 1 / (1 + math.exp(-x))
            if t == k:
                out.append(alpha * (1 - p) ** gamma * _softplus(-x))  # -log p
            elif t >= 0:
                out.append((1 - alpha) * p**gamma * _softplus(x))  # -log(1 - p)
            else:
                out.append(0.0)
        rows.append(out)
    return torch.tensor(rows, dtype=torch.float64).reshape(logits.shape)


def reference_binary(logits, targets, gamma, alpha):
    out = []
    for x, t in zip(logits.double().reshape(-1).tolist(), targets.double().reshape(-1).tolist()):
        p = 1 / (1 + math.exp(-x))
        bce = -(t * -_softplus(-x) + (1 - t) * -_softplus(x))
        p_t = p * t + (1 - p) * (1 - t)
        a_t = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else 1.0
        out.append(a_t * (1 - p_t) ** gamma * bce)
    return torch.tensor(out, dtype=torch.float64).reshape(logits.shape)


def multiclass_inputs(n=40, k=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, generator=g, dtype=torch.float64) * 3).to(dtype)
    targets = torch.randint(-1, k + 1, (n,), generator=g)  # -1 ignored, 0 background, 1..k
    return logits, targets


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.25), (0.0, 0.5), (1.5, 0.75)])
def test_multiclass_matches_reference(impl, dtype, gamma, alpha):
    logits, targets = multiclass_inputs(dtype=dtype)
    out = sigmoid_focal_loss(logits, targets, gamma, alpha, impl=impl)
    assert out.shape == logits.shape
    assert out.dtype == (torch.float32 if dtype == torch.float16 else dtype)
    expected = reference_multiclass(logits, targets, gamma, alpha)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)
    assert torch.all(out[targets < 0] == 0)


def test_multiclass_gradcheck(impl):
    logits, targets = multiclass_inputs(n=12, k=5, seed=1)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, targets, 2.0, 0.25, impl=impl), (logits,))
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, targets, 1.3, 0.6, impl=impl), (logits,))


def test_multiclass_compiled_matches_torch_gradients(require_compiled):
    logits, targets = multiclass_inputs(n=200, k=80, seed=2, dtype=torch.float32)
    grads = []
    for impl in ("compiled", "torch"):
        x = logits.clone().requires_grad_(True)
        sigmoid_focal_loss(x, targets, 2.0, 0.25, impl=impl).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_module_returns_sum_and_extreme_logits_are_finite(impl):
    logits, targets = multiclass_inputs(seed=3)
    layer = SigmoidFocalLoss(gamma=2.0, alpha=0.25, impl=impl)
    torch.testing.assert_close(layer(logits, targets), reference_multiclass(logits, targets, 2.0, 0.25).sum())
    extreme = torch.tensor([[200.0, -200.0], [-200.0, 200.0]], dtype=torch.float32)
    loss = sigmoid_focal_loss(extreme, torch.tensor([2, 1]), 2.0, 0.25, impl=impl)
    assert torch.isfinite(loss).all()
    assert float(loss.sum()) > 100  # confidently wrong logits give a large loss, not inf/nan


def test_multiclass_rejects_bad_inputs():
    with pytest.raises(ValueError, match="logits"):
        sigmoid_focal_loss(torch.zeros(3), torch.zeros(3, dtype=torch.long), 2.0, 0.25)
    with pytest.raises(ValueError, match="targets"):
        sigmoid_focal_loss(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), 2.0, 0.25)
    with pytest.raises(TypeError, match="integer"):
        sigmoid_focal_loss(torch.zeros(3, 2), torch.zeros(3), 2.0, 0.25)


def token_inputs(batch=2, anchors=30, tokens=12, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, anchors, tokens, generator=g, dtype=torch.float64) * 3).to(dtype)
    targets = (torch.rand(batch, anchors, tokens, generator=g) < 0.2).to(dtype)
    text_mask = torch.ones(batch, tokens, dtype=torch.long)
    text_mask[0, 8:] = 0
    text_mask[1, 5:] = 0
    return logits, targets, text_mask


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0)])
def test_token_matches_reference(impl, dtype, alpha, gamma):
    logits, targets, _ = token_inputs(dtype=dtype)
    out = token_sigmoid_focal_loss(logits, targets, alpha, gamma, impl=impl)
    expected = reference_binary(logits, targets, gamma, alpha)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


def test_token_mask_equals_upstream_masked_select(impl):
    logits, targets, text_mask = token_inputs(seed=1)
    out = token_sigmoid_focal_loss(logits, targets, 0.25, 2.0, mask=text_mask, impl=impl)
    keep = (text_mask > 0).unsqueeze(1).expand_as(logits)
    assert torch.all(out[~keep] == 0)
    selected = reference_binary(logits.masked_select(keep), targets.masked_select(keep), 2.0, 0.25)
    torch.testing.assert_close(out.sum(), selected.sum())
    layer = TokenSigmoidFocalLoss(alpha=0.25, gamma=2.0, impl=impl)
    torch.testing.assert_close(layer(logits, targets, text_mask), selected.sum())


def test_token_gradcheck_with_mask(impl):
    logits, targets, text_mask = token_inputs(batch=2, anchors=4, tokens=6, seed=2)
    logits.requires_grad_(True)

    def fn(x):
        return token_sigmoid_focal_loss(x, targets, 0.25, 2.0, mask=text_mask, impl=impl)

    assert torch.autograd.gradcheck(fn, (logits,), fast_mode=True)
    soft_targets = torch.rand(2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(lambda x: token_sigmoid_focal_loss(x, soft_targets, 0.3, 2.5, impl=impl),
                                    (logits,), fast_mode=True)


def test_token_auto_is_pure_torch_on_cpu(monkeypatch):
    """On a CPU "auto" takes the pure-torch token loss, which is faster there than the compiled kernel."""
    module = importlib.import_module("maskrcnn_benchmark.layers.sigmoid_focal_loss")
    calls = []
    torch_path = module._binary_focal_loss_torch
    monkeypatch.setattr(module, "_binary_focal_loss_torch", lambda *args: calls.append(1) or torch_path(*args))
    logits, targets, text_mask = token_inputs(seed=4)
    auto = token_sigmoid_focal_loss(logits, targets, 0.25, 2.0, mask=text_mask)
    assert calls == [1]
    expected = reference_binary(logits, targets, 2.0, 0.25) * (text_mask > 0).unsqueeze(1)
    torch.testing.assert_close(auto, expected)


def test_token_rejects_bad_inputs():
    with pytest.raises(ValueError, match="must match"):
        token_sigmoid_focal_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), 0.25, 2.0)
    with pytest.raises(ValueError, match="broadcast"):
        token_sigmoid_focal_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), 0.25, 2.0, mask=torch.ones(3, 5))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_kernels_match_cpu(require_compiled_cuda, dtype):
    logits, targets = multiclass_inputs(n=500, k=80, seed=4, dtype=dtype)
    tok_logits, tok_targets, text_mask = token_inputs(batch=2, anchors=300, tokens=256, seed=5, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for device in ("cpu", "cuda"):
        x = logits.detach().to(device).clone().requires_grad_(True)
        y = tok_logits.detach().to(device).clone().requires_grad_(True)
        loss_a = sigmoid_focal_loss(x, targets.to(device), 2.0, 0.25, impl="compiled")
        loss_b = token_sigmoid_focal_loss(y, tok_targets.to(device), 0.25, 2.0, mask=text_mask.to(device),
                                          impl="compiled")
        (loss_a.sum() + loss_b.sum()).backward()
        if device == "cpu":
            want = [loss_a.detach(), loss_b.detach(), x.grad, y.grad]
        else:
            got = [loss_a.detach().cpu(), loss_b.detach().cpu(), x.grad.cpu(), y.grad.cpu()]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **tol)
