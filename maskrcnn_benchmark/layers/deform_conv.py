"""Modulated deformable convolution (DCNv2), as used by every DyHead conv (upstream-facts.md 1.10).

Layouts (the standard DCNv2 ones, shared by upstream's kernel and ``torchvision.ops.deform_conv2d``):

- ``offset`` (Tensor[B, 2*dg*kh*kw, Ho, Wo]): for deformable group g and kernel tap k = i*kw + j (row-major),
  channel ``g*2*kh*kw + 2*k`` is the y (row) offset and ``+1`` the x (column) offset.
- ``mask`` (Tensor[B, dg*kh*kw, Ho, Wo]): one modulation scalar per tap, already passed through a sigmoid by
  the caller; channel ``g*kh*kw + k``.

Sampling reads the input bilinearly with zero padding; points outside (-1, H) x (-1, W) read 0.

Finer-level offsets (UPSTREAM-QUIRK, upstream-facts.md 1.10): the DyHead computes offsets at level l's
resolution (H x W) and also uses them for a conv whose output is the coarser Ho x Wo. Upstream's CUDA kernel
does not check the shape and reads each image's offset buffer as if it were laid out (C_off, Ho, Wo). We
reproduce that, in every implementation, by passing ``offset[b].flatten()[: C_off*Ho*Wo].view(C_off, Ho, Wo)``
(same for the mask) to the convolution; gradients flow back into that prefix, the rest gets zero gradient,
exactly as upstream's backward kernel writes them. Offsets with a smaller spatial size, or the wrong channel
count, are rejected with a ``ValueError``.

Implementations (``impl=``): "compiled" (``maskrcnn_benchmark._C``, CPU and CUDA, forward and backward),
"torch" (``torchvision.ops.deform_conv2d(..., mask=...)``, or a pure-torch gather implementation when
torchvision is missing) and "auto": on a CPU the compiled kernel when built (its forward pass samples each point
once for all channels into channels-last columns, a block of output positions at a time: about 5x faster than
torchvision on the DyHead's maps, see benchmarks/results/ops_cpu_2cores.json); on CUDA the faster of compiled
and torchvision, measured on the first call per device and dtype (:func:`measured_impl`; the compiled forward
samples a block of images per launch).

Precision: like upstream's ``custom_fwd(cast_inputs=float32)``, the op runs in float32 under autocast
(returning float32); float16/bfloat16 inputs outside autocast are computed in float32 and the result cast
back. The one exception is inference in ``TEST.PRECISION`` bf16 / fp16 (:func:`reduced_precision_dcn`): on
CUDA the compiled kernel then runs in the autocast dtype, with the sampling coordinates, bilinear weights and
interpolation in float32 (only the features and the GEMM are in 16 bits).
"""

import contextlib
import contextvars
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import _ext

logger = logging.getLogger(__name__)

__all__ = ["ModulatedDeformConv", "modulated_deform_conv", "reduced_precision_dcn", "measured_impl"]

try:
    from torchvision.ops import deform_conv2d as _tv_deform_conv2d
except ImportError:  # torchvision is optional for this op
    _tv_deform_conv2d = None

IntPair = int | tuple[int, int]

_REDUCED_PRECISION = contextvars.ContextVar("dcn_reduced_precision", default=False)
_MEASURED: dict[tuple[str, torch.dtype], str] = {}
_MEASURE_REPEATS = 3


@contextlib.contextmanager
def reduced_precision_dcn(enabled: bool = True) -> Iterator[None]:
    """Let the compiled CUDA kernel run in the autocast dtype (float16 / bfloat16) inside this block.

    ``GeneralizedVLRCNN.detect_prompts`` enters it for ``TEST.PRECISION`` bf16 / fp16. Outside it (training with
    AMP, fp32 inference) the op keeps upstream's float32.
    """
    token = _REDUCED_PRECISION.set(bool(enabled))
    try:
        yield
    finally:
        _REDUCED_PRECISION.reset(token)


def _time_call(call: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Median seconds of a few calls after a warm-up, synchronising a CUDA device around each."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        call()
        samples = []
        for _ in range(_MEASURE_REPEATS):
            sync()
            start = time.perf_counter()
            call()
            sync()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measured_impl(device: torch.device, dtype: torch.dtype, candidates: Sequence[str],
                  run: Callable[[str], torch.Tensor], timer: Callable = _time_call) -> str:
    """The fastest of ``candidates`` for (device, dtype), timed once on the first call and then remembered.

    Args:
        device, dtype: what the choice is remembered for.
        candidates: implementation names (the first one wins ties and single-candidate lists).
        run: runs the current call with the named implementation.
        timer: ``timer(call, device) -> seconds`` (tests inject a fake one).
    """
    key = (str(device), dtype)
    if key not in _MEASURED:
        if len(candidates) == 1:
            _MEASURED[key] = candidates[0]
        else:
            seconds = {name: timer(lambda name=name: run(name), device) for name in candidates}
            _MEASURED[key] = min(candidates, key=lambda name: seconds[name])
            logger.info("modulated_deform_conv on %s (%s): %s chosen by measurement (%s)", device, dtype,
                        _MEASURED[key], ", ".join(f"{n} {1000 * t:.3f} ms" for n, t in seconds.items()))
    return _MEASURED[key]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"modulated_deform_conv: {name} must be an int or a pair of ints, got {value!r}")


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - (dilation * (kernel - 1) + 1)) // stride + 1


def _align_to_output(name: str, tensor: torch.Tensor, channels: int, batch: int, out_h: int,
                     out_w: int) -> torch.Tensor:
    """Checks an offset/mask tensor and applies the finer-level reinterpretation when it is larger."""
    if tensor.dim() != 4 or tensor.shape[0] != batch or tensor.shape[1] != channels:
        raise ValueError(
            f"modulated_deform_conv: {name} has shape {tuple(tensor.shape)}, expected "
            f"({batch}, {channels}, {out_h}, {out_w}) (or a larger spatial size from a finer level)"
        )
    height, width = tensor.shape[2], tensor.shape[3]
    if (height, width) == (out_h, out_w):
        return tensor
    if height < out_h or width < out_w:
        raise ValueError(
            f"modulated_deform_conv: {name} spatial size {height}x{width} is smaller than the output "
            f"{out_h}x{out_w}; only equal or larger (finer-level) {name} tensors are supported"
        )
    # UPSTREAM-QUIRK: 1.10 - upstream's kernel indexes the per-image buffer with the output's (Ho, Wo) strides.
    return tensor.reshape(batch, -1)[:, : channels * out_h * out_w].reshape(batch, channels, out_h, out_w)


class _ModulatedDeformConvFunction(torch.autograd.Function):
    """Autograd wrapper of the compiled DCNv2 kernels (inputs already validated and aligned)."""

    @staticmethod
    def forward(ctx, input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
        ctx.conv_args = (stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups,
                         deformable_groups)
        ctx.with_bias = bias is not None
        ctx.save_for_backward(input, offset, mask, weight)
        return _ext.get_extension().modulated_deform_conv_forward(input, weight, bias, offset, mask,
                                                                  *ctx.conv_args)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        input, offset, mask, weight = ctx.saved_tensors
        grad_input, grad_weight, grad_bias, grad_offset, grad_mask = (
            _ext.get_extension().modulated_deform_conv_backward(
                input, weight, ctx.with_bias, offset, mask, grad_output.contiguous(), *ctx.conv_args
            )
        )
        if not ctx.with_bias:
            grad_bias = None
        return grad_input, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None, None, None


def _deform_conv_gather(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    """Pure-torch DCNv2 (bilinear gathers + one batched matmul); autograd gives the backward pass."""
    batch, channels, height, width = input.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h, out_w = offset.shape[2], offset.shape[3]
    taps = kernel_h * kernel_w
    dg = deformable_groups
    dev, dtype = input.device, input.dtype
    tap_y = (torch.arange(kernel_h, device=dev, dtype=dtype) * dilation[0]).repeat_interleave(kernel_w)
    tap_x = (torch.arange(kernel_w, device=dev, dtype=dtype) * dilation[1]).repeat(kernel_h)
    grid_y = torch.arange(out_h, device=dev, dtype=dtype) * stride[0] - padding[0]
    grid_x = torch.arange(out_w, device=dev, dtype=dtype) * stride[1] - padding[1]
    off = offset.reshape(batch, dg, taps, 2, out_h, out_w)
    py = tap_y.view(taps, 1, 1) + grid_y.view(1, out_h, 1) + off[:, :, :, 0]
    px = tap_x.view(taps, 1, 1) + grid_x.view(1, 1, out_w) + off[:, :, :, 1]
    inside = (py > -1) & (px > -1) & (py < height) & (px < width)
    y0f, x0f = torch.floor(py), torch.floor(px)
    ly, lx = py - y0f, px - x0f
    y0, x0 = y0f.long(), x0f.long()
    planes = input.reshape(batch, dg, channels // dg, height * width)

    def corner(yi, xi):
        ok = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
        flat = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).reshape(batch, dg, 1, -1)
        values = torch.gather(planes, 3, flat.expand(-1, -1, channels // dg, -1))
        return values.reshape(batch, dg, channels // dg, taps, out_h, out_w) * ok.unsqueeze(2).to(dtype)

    def w(point_values):  # broadcast per-point values over the group's channels
        return point_values.unsqueeze(2)

    sampled = (w((1 - ly) * (1 - lx)) * corner(y0, x0) + w((1 - ly) * lx) * corner(y0, x0 + 1)
               + w(ly * (1 - lx)) * corner(y0 + 1, x0) + w(ly * lx) * corner(y0 + 1, x0 + 1))
    modulation = mask.reshape(batch, dg, taps, out_h, out_w) * inside.to(dtype)
    columns = (sampled * w(modulation)).reshape(batch, groups, (channels // groups) * taps, out_h * out_w)
    out = torch.matmul(weight.reshape(groups, out_channels // groups, -1), columns)
    out = out.reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def _run(path, input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    if path == "compiled":
        return _ModulatedDeformConvFunction.apply(input.contiguous(), offset.contiguous(), mask.contiguous(),
                                                  weight.contiguous(), bias, stride, padding, dilation, groups,
                                                  deformable_groups)
    if path == "native" or _tv_deform_conv2d is None:
        return _deform_conv_gather(input, offset, mask, weight, bias, stride, padding, dilation, groups,
                                   deformable_groups)
    return _tv_deform_conv2d(input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation,
                             mask=mask)


def _check_args(input, weight, bias, groups, deformable_groups):
    for name, tensor in (("input", input), ("weight", weight)):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise ValueError(f"modulated_deform_conv: {name} must be a 4-D tensor, got {shape}")
    channels = input.shape[1]
    if groups < 1 or deformable_groups < 1:
        raise ValueError(f"modulated_deform_conv: groups={groups} and deformable_groups={deformable_groups} "
                         "must be >= 1")
    if channels % groups or weight.shape[0] % groups or weight.shape[1] * groups != channels:
        raise ValueError(f"modulated_deform_conv: input has {channels} channels, weight {tuple(weight.shape)}, "
                         f"groups={groups}: expected weight[1] * groups == channels")
    if channels % deformable_groups:
        raise ValueError(f"modulated_deform_conv: {channels} channels not divisible by "
                         f"deformable_groups={deformable_groups}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"modulated_deform_conv: bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")


def modulated_deform_conv(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    deformable_groups: int = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Modulated deformable convolution (DCNv2).

    Args:
        input (Tensor[B, C, H, W]): input feature map.
        offset (Tensor[B, 2*dg*kh*kw, Ho', Wo']): sampling offsets, (dy, dx) per tap; Ho' x Wo' is the output
            size, or larger (finer level; reinterpreted as upstream does, see the module docstring).
        mask (Tensor[B, dg*kh*kw, Ho', Wo']): modulation scalars (already sigmoid-ed), same spatial size as offset.
        weight (Tensor[C_out, C/groups, kh, kw]): convolution weight.
        bias (Tensor[C_out] or None): convolution bias.
        stride, padding, dilation (int or (int, int)): as for ``nn.Conv2d``.
        groups (int): convolution groups.
        deformable_groups (int): offset groups (dg); channels are split into dg consecutive blocks.
        impl (str): "auto", "compiled", "torch" (torchvision when present) or "native" (pure torch, no
            torchvision; slow, for tests and machines without torchvision).

    Returns:
        Tensor[B, C_out, Ho, Wo]: float32 under autocast, else the input's dtype.
    """
    if impl not in _ext.IMPLS + ("native",):
        raise ValueError(f"modulated_deform_conv: impl must be one of {_ext.IMPLS + ('native',)}, got {impl!r}")
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    _check_args(input, weight, bias, groups, deformable_groups)
    batch, _, height, width = input.shape
    kernel_h, kernel_w = weight.shape[2], weight.shape[3]
    out_h = _output_size(height, kernel_h, stride[0], padding[0], dilation[0])
    out_w = _output_size(width, kernel_w, stride[1], padding[1], dilation[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"modulated_deform_conv: input {tuple(input.shape)} gives an empty output "
                         f"({out_h}x{out_w}) with kernel {kernel_h}x{kernel_w}")
    taps = kernel_h * kernel_w * deformable_groups
    if mask.dim() == 4 and offset.dim() == 4 and mask.shape[2:] != offset.shape[2:]:
        raise ValueError(f"modulated_deform_conv: offset {tuple(offset.shape)} and mask {tuple(mask.shape)} "
                         "must have the same spatial size")
    offset = _align_to_output("offset", offset, 2 * taps, batch, out_h, out_w)
    mask = _align_to_output("mask", mask, taps, batch, out_h, out_w)

    device_type = input.device.type
    autocast = torch.is_autocast_enabled(device_type) if device_type in ("cpu", "cuda") else False
    path = "native" if impl == "native" else _ext.select_impl("modulated_deform_conv", impl, input.device)
    compute_dtype = _compute_dtype(input.dtype, device_type, autocast, path)
    out_dtype = compute_dtype if autocast else input.dtype
    input, offset, mask, weight = (t.to(compute_dtype) for t in (input, offset, mask, weight))
    bias = None if bias is None else bias.to(compute_dtype)
    args = (stride, padding, dilation, groups, deformable_groups)
    if impl == "auto" and path == "compiled" and device_type == "cuda":
        candidates = ["compiled", "torch"] if _tv_deform_conv2d is not None and compute_dtype == torch.float32 \
            else ["compiled"]
        path = measured_impl(input.device, compute_dtype, candidates,
                             lambda name: _run(name, input, offset, mask, weight, bias, *args))
    with torch.autocast(device_type=device_type, enabled=False) if autocast else contextlib.nullcontext():
        out = _run(path, input, offset, mask, weight, bias, *args)
    return out if out.dtype == out_dtype else out.to(out_dtype)


def _compute_dtype(dtype: torch.dtype, device_type: str, autocast: bool, path: str) -> torch.dtype:
    """float32 (upstream's custom_fwd), except the autocast dtype inside :func:`reduced_precision_dcn` on CUDA."""
    if autocast and _REDUCED_PRECISION.get() and device_type == "cuda" and path == "compiled":
        return torch.get_autocast_dtype("cuda")
    if autocast or dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return dtype


class ModulatedDeformConv(nn.Module):
    """DCNv2 layer with upstream's parameter names (``weight``, ``bias``); offsets and mask come from the caller.

    Args:
        in_channels, out_channels (int): channel counts.
        kernel_size, stride, padding, dilation (int or (int, int)): as for ``nn.Conv2d``.
        groups (int): convolution groups.
        deformable_groups (int): offset groups.
        bias (bool): whether to add a learnable bias.
        impl (str): implementation choice passed to :func:`modulated_deform_conv`.

    Init (as upstream): weight ~ U(-1/sqrt(n), 1/sqrt(n)) with n = in_channels * kh * kw; bias = 0.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, deformable_groups: int = 1,
                 bias: bool = True, impl: str = "auto"):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ModulatedDeformConv: in_channels={in_channels} and out_channels={out_channels} "
                             f"must be divisible by groups={groups}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.with_bias = bias
        self.impl = impl
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: input (Tensor[B, C, H, W]), offset (Tensor[B, 2*dg*kh*kw, Ho', Wo']), mask
        (Tensor[B, dg*kh*kw, Ho', Wo']). Returns Tensor[B, C_out, Ho, Wo] (see :func:`modulated_deform_conv`)."""
        return modulated_deform_conv(input, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                     self.dilation, self.groups, self.deformable_groups, impl=self.impl)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"deformable_groups={self.deformable_groups}, bias={self.with_bias}")
