// CUDA kernels of the modulated deformable convolution (DCNv2): im2col, col2im (grad of input, atomic adds) and
// the gradient with respect to offsets and mask. Same arithmetic as cpu/deform_conv_cpu.cpp (common/ops_common.h).
// The forward pass samples a block of images in one launch (im2col_batched_kernel), also in half and bfloat16:
// sampling coordinates, bilinear weights and the interpolation are computed in float there.
#include <ATen/AccumulateType.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../ops.h"
#include "launch.cuh"

namespace mrcnn {

namespace {

// One thread per (channel, output position); loops over the kernel taps.
template <typename T>
__global__ void im2col_kernel(int64_t n, const T* input, const T* offset, const T* mask, DcnGeometry g,
                              T* columns) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const int64_t plane_in = static_cast<int64_t>(g.height) * g.width;
  const int channels_per_group = g.channels / g.deformable_groups;
  MRCNN_KERNEL_LOOP(index, n) {
    const int w = static_cast<int>(index % g.out_w);
    const int h = static_cast<int>((index / g.out_w) % g.out_h);
    const int64_t c = index / plane_out;
    const int group = static_cast<int>(c) / channels_per_group;
    const T* im = input + c * plane_in;
    T* col = columns + c * kernel_size * plane_out + h * g.out_w + w;
    for (int tap = 0; tap < kernel_size; ++tap) {
      T h_im, w_im, m;
      dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &m);
      col[tap * plane_out] = m * dcn_bilinear(im, g.height, g.width, h_im, w_im);
    }
  }
}

// dcn_bilinear with the image read in T and the arithmetic in A (A = T for float and double, float for half and
// bfloat16): for T = float it is the same arithmetic, in the same order, as dcn_bilinear.
template <typename T, typename A>
__device__ __forceinline__ A bilinear_acc(const T* im, int height, int width, A h, A w) {
  if (!dcn_in_range(h, w, height, width)) {
    return A(0);
  }
  const int h_low = static_cast<int>(floor(h));
  const int w_low = static_cast<int>(floor(w));
  const int h_high = h_low + 1;
  const int w_high = w_low + 1;
  const A lh = h - A(h_low);
  const A lw = w - A(w_low);
  const A hh = A(1) - lh;
  const A hw = A(1) - lw;
  const A v1 = (h_low >= 0 && w_low >= 0) ? static_cast<A>(im[h_low * width + w_low]) : A(0);
  const A v2 = (h_low >= 0 && w_high < width) ? static_cast<A>(im[h_low * width + w_high]) : A(0);
  const A v3 = (h_high < height && w_low >= 0) ? static_cast<A>(im[h_high * width + w_low]) : A(0);
  const A v4 = (h_high < height && w_high < width) ? static_cast<A>(im[h_high * width + w_high]) : A(0);
  return hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4;
}

// Forward sampling of `count` images at once: one thread per (image, channel, output position), looping over
// the taps; columns is (count, C*K, Ho*Wo). input/offset/mask point at the first image of the block.
template <typename T>
__global__ void im2col_batched_kernel(int64_t n, const T* input, const T* offset, const T* mask, DcnGeometry g,
                                      T* columns) {
  using A = at::acc_type<T, true>;
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const int64_t plane_in = static_cast<int64_t>(g.height) * g.width;
  const int channels_per_group = g.channels / g.deformable_groups;
  const int64_t image_in = g.channels * plane_in;
  const int64_t image_offset = 2 * kernel_size * g.deformable_groups * plane_out;
  const int64_t image_mask = kernel_size * g.deformable_groups * plane_out;
  const int64_t image_columns = g.channels * kernel_size * plane_out;
  MRCNN_KERNEL_LOOP(index, n) {
    const int w = static_cast<int>(index % g.out_w);
    const int h = static_cast<int>((index / g.out_w) % g.out_h);
    const int64_t c = (index / plane_out) % g.channels;
    const int64_t b = index / plane_out / g.channels;
    const int group = static_cast<int>(c) / channels_per_group;
    const T* im = input + b * image_in + c * plane_in;
    const T* off = offset + b * image_offset;
    const T* msk = mask + b * image_mask;
    const int64_t pos = static_cast<int64_t>(h) * g.out_w + w;
    T* col = columns + b * image_columns + c * kernel_size * plane_out + pos;
    for (int tap = 0; tap < kernel_size; ++tap) {
      const int64_t off_base = (static_cast<int64_t>(group) * 2 * kernel_size + 2 * tap) * plane_out + pos;
      const A off_h = static_cast<A>(off[off_base]);
      const A off_w = static_cast<A>(off[off_base + plane_out]);
      const A m = static_cast<A>(msk[(static_cast<int64_t>(group) * kernel_size + tap) * plane_out + pos]);
      const int i = tap / g.kernel_w;
      const int j = tap % g.kernel_w;
      const A h_im = A(h * g.stride_h - g.pad_h + i * g.dilation_h) + off_h;
      const A w_im = A(w * g.stride_w - g.pad_w + j * g.dilation_w) + off_w;
      col[tap * plane_out] = static_cast<T>(m * bilinear_acc<T, A>(im, g.height, g.width, h_im, w_im));
    }
  }
}

// One thread per column entry (channel, tap, output position); scatters into the input gradient.
template <typename T>
__global__ void col2im_kernel(int64_t n, const T* grad_columns, const T* offset, const T* mask, DcnGeometry g,
                              T* grad_input) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const int64_t plane_in = static_cast<int64_t>(g.height) * g.width;
  const int channels_per_group = g.channels / g.deformable_groups;
  MRCNN_KERNEL_LOOP(index, n) {
    const int w = static_cast<int>(index % g.out_w);
    const int h = static_cast<int>((index / g.out_w) % g.out_h);
    const int tap = static_cast<int>((index / plane_out) % kernel_size);
    const int64_t c = index / plane_out / kernel_size;
    const int group = static_cast<int>(c) / channels_per_group;
    T h_im, w_im, m;
    dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &m);
    if (!dcn_in_range(h_im, w_im, g.height, g.width)) {
      continue;
    }
    const T val = m * grad_columns[index];
    const int h_low = static_cast<int>(floor(h_im));
    const int w_low = static_cast<int>(floor(w_im));
    const T lh = h_im - T(h_low);
    const T lw = w_im - T(w_low);
    const T hh = T(1) - lh;
    const T hw = T(1) - lw;
    T* gim = grad_input + c * plane_in;
    const bool top_ok = h_low >= 0;
    const bool bottom_ok = h_low + 1 < g.height;
    const bool left_ok = w_low >= 0;
    const bool right_ok = w_low + 1 < g.width;
    if (top_ok && left_ok) gpuAtomicAdd(gim + h_low * g.width + w_low, hh * hw * val);
    if (top_ok && right_ok) gpuAtomicAdd(gim + h_low * g.width + w_low + 1, hh * lw * val);
    if (bottom_ok && left_ok) gpuAtomicAdd(gim + (h_low + 1) * g.width + w_low, lh * hw * val);
    if (bottom_ok && right_ok) gpuAtomicAdd(gim + (h_low + 1) * g.width + w_low + 1, lh * lw * val);
  }
}

// One thread per (deformable group, tap, output position); sums over the group's channels.
template <typename T>
__global__ void col2im_coord_kernel(int64_t n, const T* grad_columns, const T* input, const T* offset,
                                    const T* mask, DcnGeometry g, T* grad_offset, T* grad_mask) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  MRCNN_KERNEL_LOOP(index, n) {
    const int64_t pos = index % plane_out;
    const int w = static_cast<int>(pos % g.out_w);
    const int h = static_cast<int>(pos / g.out_w);
    const int tap = static_cast<int>((index / plane_out) % kernel_size);
    const int group = static_cast<int>(index / plane_out / kernel_size);
    const int64_t off_base = (static_cast<int64_t>(group) * 2 * kernel_size + 2 * tap) * plane_out + pos;
    dcn_coord_grad_point(g, grad_columns, input, offset, mask, group, tap, h, w, grad_offset + off_base,
                         grad_offset + off_base + plane_out,
                         grad_mask + (static_cast<int64_t>(group) * kernel_size + tap) * plane_out + pos);
  }
}

}  // namespace

void dcn_im2col_cuda(const at::Tensor& input_b, const at::Tensor& offset_b, const at::Tensor& mask_b,
                     const DcnGeometry& geom, at::Tensor& columns) {
  const c10::cuda::CUDAGuard device_guard(input_b.device());
  const int64_t n = static_cast<int64_t>(geom.channels) * geom.out_h * geom.out_w;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(input_b.scalar_type(), "dcn_im2col_cuda", [&] {
    im2col_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, input_b.data_ptr<scalar_t>(), offset_b.data_ptr<scalar_t>(), mask_b.data_ptr<scalar_t>(), geom,
        columns.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void dcn_im2col_batched_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                             int64_t first, int64_t count, const DcnGeometry& geom, at::Tensor& columns) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  const int64_t n = count * geom.channels * geom.out_h * geom.out_w;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                  "dcn_im2col_batched_cuda", [&] {
    im2col_batched_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, input[first].data_ptr<scalar_t>(), offset[first].data_ptr<scalar_t>(), mask[first].data_ptr<scalar_t>(),
        geom, columns.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void dcn_col2im_cuda(const at::Tensor& grad_columns, const at::Tensor& offset_b, const at::Tensor& mask_b,
                     const DcnGeometry& geom, at::Tensor& grad_input_b) {
  const c10::cuda::CUDAGuard device_guard(grad_columns.device());
  const int64_t n = grad_columns.numel();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(grad_columns.scalar_type(), "dcn_col2im_cuda", [&] {
    col2im_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, grad_columns.data_ptr<scalar_t>(), offset_b.data_ptr<scalar_t>(), mask_b.data_ptr<scalar_t>(), geom,
        grad_input_b.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void dcn_col2im_coord_cuda(const at::Tensor& grad_columns, const at::Tensor& input_b, const at::Tensor& offset_b,
                           const at::Tensor& mask_b, const DcnGeometry& geom, at::Tensor& grad_offset_b,
                           at::Tensor& grad_mask_b) {
  const c10::cuda::CUDAGuard device_guard(grad_columns.device());
  const int64_t n = static_cast<int64_t>(geom.deformable_groups) * geom.kernel_h * geom.kernel_w * geom.out_h *
                    geom.out_w;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(grad_columns.scalar_type(), "dcn_col2im_coord_cuda", [&] {
    col2im_coord_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, grad_columns.data_ptr<scalar_t>(), input_b.data_ptr<scalar_t>(), offset_b.data_ptr<scalar_t>(),
        mask_b.data_ptr<scalar_t>(), geom, grad_offset_b.data_ptr<scalar_t>(), grad_mask_b.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace mrcnn
