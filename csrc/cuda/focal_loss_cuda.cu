// CUDA kernels of the per-element sigmoid focal losses; same arithmetic as cpu/focal_loss_cpu.cpp.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../ops.h"
#include "launch.cuh"

namespace mrcnn {

namespace {

template <typename T>
__global__ void focal_forward_kernel(int64_t n, const T* logits, const int64_t* targets, int64_t num_classes,
                                     T gamma, T alpha, T* out) {
  MRCNN_KERNEL_LOOP(i, n) {
    const int64_t t = targets[i / num_classes];
    const int64_t k = i % num_classes + 1;
    T v = 0;
    if (t == k) {
      v = focal_pos_loss(logits[i], gamma, alpha);
    } else if (t >= 0) {
      v = focal_neg_loss(logits[i], gamma, alpha);
    }
    out[i] = v;
  }
}

template <typename T>
__global__ void focal_backward_kernel(int64_t n, const T* logits, const int64_t* targets, const T* d_losses,
                                      int64_t num_classes, T gamma, T alpha, T* out) {
  MRCNN_KERNEL_LOOP(i, n) {
    const int64_t t = targets[i / num_classes];
    const int64_t k = i % num_classes + 1;
    T v = 0;
    if (t == k) {
      v = focal_pos_grad(logits[i], gamma, alpha);
    } else if (t >= 0) {
      v = focal_neg_grad(logits[i], gamma, alpha);
    }
    out[i] = v * d_losses[i];
  }
}

template <typename T>
__global__ void binary_forward_kernel(int64_t n, const T* logits, const T* targets, T gamma, T alpha, T* out) {
  MRCNN_KERNEL_LOOP(i, n) { out[i] = binary_focal_loss(logits[i], targets[i], gamma, alpha); }
}

template <typename T>
__global__ void binary_backward_kernel(int64_t n, const T* logits, const T* targets, const T* d_losses, T gamma,
                                       T alpha, T* out) {
  MRCNN_KERNEL_LOOP(i, n) { out[i] = binary_focal_grad(logits[i], targets[i], gamma, alpha) * d_losses[i]; }
}

}  // namespace

at::Tensor sigmoid_focal_loss_forward_cuda(const at::Tensor& logits_in, const at::Tensor& targets_in,
                                           int64_t num_classes, double gamma, double alpha) {
  const c10::cuda::CUDAGuard device_guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(at::kLong).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t n = logits.numel();
  if (n == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "sigmoid_focal_loss_forward_cuda", [&] {
    focal_forward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, logits.data_ptr<scalar_t>(), targets.data_ptr<int64_t>(), num_classes, static_cast<scalar_t>(gamma),
        static_cast<scalar_t>(alpha), out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor sigmoid_focal_loss_backward_cuda(const at::Tensor& logits_in, const at::Tensor& targets_in,
                                            const at::Tensor& d_losses_in, int64_t num_classes, double gamma,
                                            double alpha) {
  const c10::cuda::CUDAGuard device_guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(at::kLong).contiguous();
  const at::Tensor d_losses = d_losses_in.to(logits.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t n = logits.numel();
  if (n == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "sigmoid_focal_loss_backward_cuda", [&] {
    focal_backward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, logits.data_ptr<scalar_t>(), targets.data_ptr<int64_t>(), d_losses.data_ptr<scalar_t>(), num_classes,
        static_cast<scalar_t>(gamma), static_cast<scalar_t>(alpha), out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor binary_focal_loss_forward_cuda(const at::Tensor& logits_in, const at::Tensor& targets_in, double gamma,
                                          double alpha) {
  const c10::cuda::CUDAGuard device_guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(logits.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t n = logits.numel();
  if (n == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "binary_focal_loss_forward_cuda", [&] {
    binary_forward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, logits.data_ptr<scalar_t>(), targets.data_ptr<scalar_t>(), static_cast<scalar_t>(gamma),
        static_cast<scalar_t>(alpha), out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor binary_focal_loss_backward_cuda(const at::Tensor& logits_in, const at::Tensor& targets_in,
                                           const at::Tensor& d_losses_in, double gamma, double alpha) {
  const c10::cuda::CUDAGuard device_guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(logits.scalar_type()).contiguous();
  const at::Tensor d_losses = d_losses_in.to(logits.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t n = logits.numel();
  if (n == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "binary_focal_loss_backward_cuda", [&] {
    binary_backward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        n, logits.data_ptr<scalar_t>(), targets.data_ptr<scalar_t>(), d_losses.data_ptr<scalar_t>(),
        static_cast<scalar_t>(gamma), static_cast<scalar_t>(alpha), out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace mrcnn
