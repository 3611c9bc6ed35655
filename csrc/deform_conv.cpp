// Device-independent driver of the modulated deformable convolution (DCNv2).
//
// Per image: sample the input at the deformed positions into a column buffer (im2col), then one batched matmul
// per convolution group; on CUDA the forward pass does a block of images per launch and per GEMM, also in half
// and bfloat16. The backward pass runs the same steps in reverse. Only the sampling kernels are device specific
// (cpu/deform_conv_cpu.cpp, cuda/deform_conv_cuda.cu).
#include <algorithm>
#include <utility>
#include <vector>

#include "ops.h"

namespace mrcnn {

namespace {

void im2col(const at::Tensor& input_b, const at::Tensor& offset_b, const at::Tensor& mask_b, const DcnGeometry& g,
            at::Tensor& columns) {
  if (input_b.is_cuda()) {
#ifdef WITH_CUDA
    dcn_im2col_cuda(input_b, offset_b, mask_b, g, columns);
    return;
#else
    TORCH_CHECK(false, "maskrcnn_benchmark._C was built without CUDA support");
#endif
  }
  dcn_im2col_cpu(input_b, offset_b, mask_b, g, columns);
}

void col2im(const at::Tensor& grad_columns, const at::Tensor& offset_b, const at::Tensor& mask_b,
            const DcnGeometry& g, at::Tensor& grad_input_b) {
  if (grad_columns.is_cuda()) {
#ifdef WITH_CUDA
    dcn_col2im_cuda(grad_columns, offset_b, mask_b, g, grad_input_b);
    return;
#else
    TORCH_CHECK(false, "maskrcnn_benchmark._C was built without CUDA support");
#endif
  }
  dcn_col2im_cpu(grad_columns, offset_b, mask_b, g, grad_input_b);
}

void col2im_coord(const at::Tensor& grad_columns, const at::Tensor& input_b, const at::Tensor& offset_b,
                  const at::Tensor& mask_b, const DcnGeometry& g, at::Tensor& grad_offset_b,
                  at::Tensor& grad_mask_b) {
  if (grad_columns.is_cuda()) {
#ifdef WITH_CUDA
    dcn_col2im_coord_cuda(grad_columns, input_b, offset_b, mask_b, g, grad_offset_b, grad_mask_b);
    return;
#else
    TORCH_CHECK(false, "maskrcnn_benchmark._C was built without CUDA support");
#endif
  }
  dcn_col2im_coord_cpu(grad_columns, input_b, offset_b, mask_b, g, grad_offset_b, grad_mask_b);
}

DcnGeometry make_geometry(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                          const at::Tensor& mask, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                          int64_t dilation_h, int64_t dilation_w, int64_t groups, int64_t deformable_groups) {
  TORCH_CHECK(input.dim() == 4, "input must be (B, C, H, W), got ", input.sizes());
  TORCH_CHECK(weight.dim() == 4, "weight must be (C_out, C_in/groups, kh, kw), got ", weight.sizes());
  TORCH_CHECK(input.scalar_type() == weight.scalar_type() && input.scalar_type() == offset.scalar_type() &&
                  input.scalar_type() == mask.scalar_type(),
              "input, weight, offset and mask must share a dtype");
  TORCH_CHECK(input.device() == weight.device() && input.device() == offset.device() &&
                  input.device() == mask.device(),
              "input, weight, offset and mask must be on one device");
  TORCH_CHECK(groups >= 1 && deformable_groups >= 1, "groups and deformable_groups must be >= 1");
  TORCH_CHECK(stride_h >= 1 && stride_w >= 1 && dilation_h >= 1 && dilation_w >= 1 && pad_h >= 0 && pad_w >= 0,
              "invalid stride/padding/dilation");
  DcnGeometry g;
  g.channels = static_cast<int>(input.size(1));
  g.height = static_cast<int>(input.size(2));
  g.width = static_cast<int>(input.size(3));
  g.kernel_h = static_cast<int>(weight.size(2));
  g.kernel_w = static_cast<int>(weight.size(3));
  g.pad_h = static_cast<int>(pad_h);
  g.pad_w = static_cast<int>(pad_w);
  g.stride_h = static_cast<int>(stride_h);
  g.stride_w = static_cast<int>(stride_w);
  g.dilation_h = static_cast<int>(dilation_h);
  g.dilation_w = static_cast<int>(dilation_w);
  g.deformable_groups = static_cast<int>(deformable_groups);
  g.out_h = (g.height + 2 * g.pad_h - (g.dilation_h * (g.kernel_h - 1) + 1)) / g.stride_h + 1;
  g.out_w = (g.width + 2 * g.pad_w - (g.dilation_w * (g.kernel_w - 1) + 1)) / g.stride_w + 1;
  TORCH_CHECK(g.out_h > 0 && g.out_w > 0, "output would be empty for input ", input.sizes());
  TORCH_CHECK(g.channels % groups == 0 && weight.size(0) % groups == 0, "channels not divisible by groups");
  TORCH_CHECK(weight.size(1) * groups == g.channels, "weight has ", weight.size(1), " input channels per group, ",
              "input has ", g.channels, " channels and groups=", groups);
  TORCH_CHECK(g.channels % g.deformable_groups == 0, "channels not divisible by deformable_groups");
  const int64_t k = static_cast<int64_t>(g.kernel_h) * g.kernel_w;
  const int64_t b = input.size(0);
  TORCH_CHECK(offset.dim() == 4 && offset.size(0) == b && offset.size(1) == 2 * k * deformable_groups &&
                  offset.size(2) == g.out_h && offset.size(3) == g.out_w,
              "offset must be (", b, ", ", 2 * k * deformable_groups, ", ", g.out_h, ", ", g.out_w, "), got ",
              offset.sizes());
  TORCH_CHECK(mask.dim() == 4 && mask.size(0) == b && mask.size(1) == k * deformable_groups &&
                  mask.size(2) == g.out_h && mask.size(3) == g.out_w,
              "mask must be (", b, ", ", k * deformable_groups, ", ", g.out_h, ", ", g.out_w, "), got ",
              mask.sizes());
  return g;
}

// Output positions per block of the CPU forward and backward passes: a block's columns (256 x 9 x 256 floats,
// 2.4 MB for the DyHead) stay in cache between the sampling and the matmul that reads them. 128 to 512 measure
// alike on a 2-core x86 machine; the whole image at once (38 MB at 50x84) is about 2x slower.
constexpr int64_t kCpuPositionBlock = 256;

// The operands of the channels-last CPU passes (no conv groups): the image transposed once to (B, H, W, C), the
// weight as (O, K*C) (entry tap*C + c, the columns' order), and the blocks of output positions.
struct ChannelsLastCpu {
  at::Tensor input_cl;
  at::Tensor weight_cl;
  int64_t out_channels;
  int64_t plane_out;
  int64_t block;
  at::Tensor new_columns() const { return at::empty({block, weight_cl.size(1)}, input_cl.options()); }
};

ChannelsLastCpu channels_last_cpu(const at::Tensor& input, const at::Tensor& weight, const DcnGeometry& g) {
  ChannelsLastCpu cl;
  cl.out_channels = weight.size(0);
  cl.plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  cl.input_cl = input.permute({0, 2, 3, 1}).contiguous();
  cl.weight_cl = weight.permute({0, 2, 3, 1}).reshape({cl.out_channels, -1});
  cl.block = std::max<int64_t>(1, std::min<int64_t>(cl.plane_out, kCpuPositionBlock));
  return cl;
}

// CPU forward pass without conv groups, channels-last: each block of output positions is sampled into (n, K*C)
// columns and multiplied by the weight as (O, K*C).
void forward_channels_last_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                               const at::Tensor& weight, const DcnGeometry& g, at::Tensor& output) {
  const ChannelsLastCpu cl = channels_last_cpu(input, weight, g);
  at::Tensor columns = cl.new_columns();
  for (int64_t b = 0; b < input.size(0); ++b) {
    at::Tensor out_b = output[b].view({cl.out_channels, cl.plane_out});
    for (int64_t first = 0; first < cl.plane_out; first += cl.block) {
      const int64_t count = std::min(cl.block, cl.plane_out - first);
      at::Tensor cols = columns.narrow(0, 0, count);
      dcn_im2col_channels_last_cpu(cl.input_cl[b], offset[b], mask[b], g, first, count, cols);
      at::Tensor out = out_b.narrow(1, first, count);
      at::mm_out(out, cl.weight_cl, cols.t());
    }
  }
}

// CPU backward pass without conv groups, channels-last, in the forward pass's blocks of output positions: per
// block, the columns give the weight gradient, grad_columns = grad_output^T W gives the input, offset and mask
// gradients (dcn_col2im_channels_last_cpu). Returns (grad_input, grad_weight) in the usual layouts.
std::pair<at::Tensor, at::Tensor> backward_channels_last_cpu(const at::Tensor& input, const at::Tensor& offset,
                                                             const at::Tensor& mask, const at::Tensor& weight,
                                                             const at::Tensor& grad_output, const DcnGeometry& g,
                                                             at::Tensor& grad_offset, at::Tensor& grad_mask) {
  const ChannelsLastCpu cl = channels_last_cpu(input, weight, g);
  at::Tensor grad_input_cl = at::zeros_like(cl.input_cl);
  at::Tensor grad_weight_cl = at::zeros_like(cl.weight_cl);
  at::Tensor columns = cl.new_columns();
  at::Tensor grad_columns = cl.new_columns();
  for (int64_t b = 0; b < input.size(0); ++b) {
    const at::Tensor gout_b = grad_output[b].view({cl.out_channels, cl.plane_out});
    at::Tensor grad_input_b = grad_input_cl[b];
    at::Tensor grad_offset_b = grad_offset[b];
    at::Tensor grad_mask_b = grad_mask[b];
    for (int64_t first = 0; first < cl.plane_out; first += cl.block) {
      const int64_t count = std::min(cl.block, cl.plane_out - first);
      const at::Tensor gout = gout_b.narrow(1, first, count);
      at::Tensor cols = columns.narrow(0, 0, count);
      at::Tensor gcols = grad_columns.narrow(0, 0, count);
      dcn_im2col_channels_last_cpu(cl.input_cl[b], offset[b], mask[b], g, first, count, cols);
      grad_weight_cl.addmm_(gout, cols);
      at::mm_out(gcols, gout.t(), cl.weight_cl);
      dcn_col2im_channels_last_cpu(gcols, cl.input_cl[b], offset[b], mask[b], g, first, count, grad_input_b,
                                   grad_offset_b, grad_mask_b);
    }
  }
  at::Tensor grad_input = grad_input_cl.permute({0, 3, 1, 2}).contiguous();
  at::Tensor grad_weight = grad_weight_cl.view({cl.out_channels, g.kernel_h, g.kernel_w, g.channels})
                               .permute({0, 3, 1, 2})
                               .contiguous();
  return {grad_input, grad_weight};
}

#ifdef WITH_CUDA
// Column buffer of the batched CUDA forward pass, in elements (1 GiB in float32): blocks of images are sampled
// in one launch and multiplied in one batched GEMM; a larger batch is cut into blocks that fit.
constexpr int64_t kColumnBudget = int64_t(1) << 28;

void forward_batched_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                          const at::Tensor& weight_g, const DcnGeometry& g, at::Tensor& output) {
  const int64_t batch = input.size(0);
  const int64_t groups = weight_g.size(0);
  const int64_t k = static_cast<int64_t>(g.kernel_h) * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const int64_t per_image = g.channels * k * plane_out;
  const int64_t fit = kColumnBudget / std::max<int64_t>(per_image, 1);
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(batch, fit));
  at::Tensor columns = at::empty({block, g.channels * k, plane_out}, input.options());
  for (int64_t first = 0; first < batch; first += block) {
    const int64_t count = std::min(block, batch - first);
    at::Tensor cols = columns.narrow(0, 0, count);
    dcn_im2col_batched_cuda(input, offset, mask, first, count, g, cols);
    at::Tensor out = output.narrow(0, first, count).view({count, groups, weight_g.size(1), plane_out});
    at::matmul_out(out, weight_g, cols.view({count, groups, -1, plane_out}));
  }
}
#endif

}  // namespace

at::Tensor modulated_deform_conv_forward(const at::Tensor& input_in, const at::Tensor& weight_in,
                                         const std::optional<at::Tensor>& bias, const at::Tensor& offset_in,
                                         const at::Tensor& mask_in, int64_t stride_h, int64_t stride_w,
                                         int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                                         int64_t groups, int64_t deformable_groups) {
  const DcnGeometry g = make_geometry(input_in, weight_in, offset_in, mask_in, stride_h, stride_w, pad_h, pad_w,
                                      dilation_h, dilation_w, groups, deformable_groups);
  const at::Tensor input = input_in.contiguous();
  const at::Tensor offset = offset_in.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const int64_t batch = input.size(0);
  const int64_t out_channels = weight_in.size(0);
  const int64_t k = static_cast<int64_t>(g.kernel_h) * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const at::Tensor weight_g = weight_in.contiguous().view({groups, out_channels / groups, -1});
  at::Tensor output = at::empty({batch, out_channels, g.out_h, g.out_w}, input.options());
  if (input.is_cuda()) {
#ifdef WITH_CUDA
    forward_batched_cuda(input, offset, mask, weight_g, g, output);
#else
    TORCH_CHECK(false, "maskrcnn_benchmark._C was built without CUDA support");
#endif
  } else if (groups == 1) {
    forward_channels_last_cpu(input, offset, mask, weight_in.contiguous(), g, output);
  } else {
    at::Tensor columns = at::empty({g.channels * k, plane_out}, input.options());
    const at::Tensor columns_g = columns.view({groups, -1, plane_out});
    for (int64_t b = 0; b < batch; ++b) {
      im2col(input[b], offset[b], mask[b], g, columns);
      at::Tensor out_b = output[b].view({groups, out_channels / groups, plane_out});
      at::bmm_out(out_b, weight_g, columns_g);
    }
  }
  if (bias.has_value() && bias->defined()) {
    output.add_(bias->view({1, out_channels, 1, 1}));
  }
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> modulated_deform_conv_backward(
    const at::Tensor& input_in, const at::Tensor& weight_in, bool with_bias, const at::Tensor& offset_in,
    const at::Tensor& mask_in, const at::Tensor& grad_output_in, int64_t stride_h, int64_t stride_w, int64_t pad_h,
    int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups, int64_t deformable_groups) {
  const DcnGeometry g = make_geometry(input_in, weight_in, offset_in, mask_in, stride_h, stride_w, pad_h, pad_w,
                                      dilation_h, dilation_w, groups, deformable_groups);
  const at::Tensor input = input_in.contiguous();
  const at::Tensor offset = offset_in.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const at::Tensor grad_output = grad_output_in.to(input.scalar_type()).contiguous();
  const int64_t batch = input.size(0);
  const int64_t out_channels = weight_in.size(0);
  const int64_t k = static_cast<int64_t>(g.kernel_h) * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  TORCH_CHECK(grad_output.size(0) == batch && grad_output.size(1) == out_channels &&
                  grad_output.size(2) == g.out_h && grad_output.size(3) == g.out_w,
              "grad_output has shape ", grad_output.sizes(), ", expected (", batch, ", ", out_channels, ", ",
              g.out_h, ", ", g.out_w, ")");
  at::Tensor grad_offset = at::zeros_like(offset);
  at::Tensor grad_mask = at::zeros_like(mask);
  at::Tensor grad_bias;
  if (with_bias) {
    grad_bias = grad_output.sum({0, 2, 3});
  } else {
    grad_bias = at::zeros({0}, input.options());
  }
  if (!input.is_cuda() && groups == 1) {
    auto [grad_input, grad_weight] =
        backward_channels_last_cpu(input, offset, mask, weight_in.contiguous(), grad_output, g, grad_offset, grad_mask);
    return {grad_input, grad_weight, grad_bias, grad_offset, grad_mask};
  }
  const at::Tensor weight_g = weight_in.contiguous().view({groups, out_channels / groups, -1});
  const at::Tensor weight_g_t = weight_g.transpose(1, 2);
  at::Tensor grad_input = at::zeros_like(input);
  at::Tensor grad_weight = at::zeros_like(weight_g);
  at::Tensor columns = at::empty({g.channels * k, plane_out}, input.options());
  at::Tensor grad_columns = at::empty({g.channels * k, plane_out}, input.options());
  at::Tensor columns_g = columns.view({groups, -1, plane_out});
  at::Tensor grad_columns_g = grad_columns.view({groups, -1, plane_out});
  for (int64_t b = 0; b < batch; ++b) {
    const at::Tensor gout_b = grad_output[b].view({groups, out_channels / groups, plane_out});
    at::bmm_out(grad_columns_g, weight_g_t, gout_b);
    at::Tensor grad_offset_b = grad_offset[b];
    at::Tensor grad_mask_b = grad_mask[b];
    at::Tensor grad_input_b = grad_input[b];
    col2im_coord(grad_columns, input[b], offset[b], mask[b], g, grad_offset_b, grad_mask_b);
    col2im(grad_columns, offset[b], mask[b], g, grad_input_b);
    im2col(input[b], offset[b], mask[b], g, columns);
    grad_weight.baddbmm_(gout_b, columns_g.transpose(1, 2));
  }
  return {grad_input, grad_weight.view_as(weight_in), grad_bias, grad_offset, grad_mask};
}

}  // namespace mrcnn
