// CPU kernels of the per-element sigmoid focal losses (multi-class with integer targets, and binary/token).
#include <ATen/Parallel.h>

#include "../ops.h"

namespace mrcnn {

namespace {

// Multi-class: element (n, k) is positive when targets[n] == k + 1, negative when targets[n] >= 0 otherwise;
// targets < 0 are ignored (loss 0), as upstream.
template <typename T>
void focal_forward_impl(const T* logits, const int64_t* targets, int64_t n, int64_t num_classes, T gamma, T alpha,
                        T* out) {
  at::parallel_for(0, n * num_classes, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = targets[i / num_classes];
      const int64_t k = i % num_classes + 1;
      const T x = logits[i];
      T v = 0;
      if (t == k) {
        v = focal_pos_loss(x, gamma, alpha);
      } else if (t >= 0) {
        v = focal_neg_loss(x, gamma, alpha);
      }
      out[i] = v;
    }
  });
}

template <typename T>
void focal_backward_impl(const T* logits, const int64_t* targets, const T* d_losses, int64_t n,
                         int64_t num_classes, T gamma, T alpha, T* out) {
  at::parallel_for(0, n * num_classes, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = targets[i / num_classes];
      const int64_t k = i % num_classes + 1;
      const T x = logits[i];
      T v = 0;
      if (t == k) {
        v = focal_pos_grad(x, gamma, alpha);
      } else if (t >= 0) {
        v = focal_neg_grad(x, gamma, alpha);
      }
      out[i] = v * d_losses[i];
    }
  });
}

}  // namespace

at::Tensor sigmoid_focal_loss_forward_cpu(const at::Tensor& logits_in, const at::Tensor& targets_in,
                                          int64_t num_classes, double gamma, double alpha) {
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(at::kLong).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t n = logits.size(0);
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "sigmoid_focal_loss_forward_cpu", [&] {
    focal_forward_impl<scalar_t>(logits.data_ptr<scalar_t>(), targets.data_ptr<int64_t>(), n, num_classes,
                                 static_cast<scalar_t>(gamma), static_cast<scalar_t>(alpha),
                                 out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor sigmoid_focal_loss_backward_cpu(const at::Tensor& logits_in, const at::Tensor& targets_in,
                                           const at::Tensor& d_losses_in, int64_t num_classes, double gamma,
                                           double alpha) {
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(at::kLong).contiguous();
  const at::Tensor d_losses = d_losses_in.to(logits.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t n = logits.size(0);
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "sigmoid_focal_loss_backward_cpu", [&] {
    focal_backward_impl<scalar_t>(logits.data_ptr<scalar_t>(), targets.data_ptr<int64_t>(),
                                  d_losses.data_ptr<scalar_t>(), n, num_classes, static_cast<scalar_t>(gamma),
                                  static_cast<scalar_t>(alpha), out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor binary_focal_loss_forward_cpu(const at::Tensor& logits_in, const at::Tensor& targets_in, double gamma,
                                         double alpha) {
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(logits.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t numel = logits.numel();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "binary_focal_loss_forward_cpu", [&] {
    const scalar_t* x = logits.data_ptr<scalar_t>();
    const scalar_t* t = targets.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const scalar_t g = static_cast<scalar_t>(gamma);
    const scalar_t a = static_cast<scalar_t>(alpha);
    at::parallel_for(0, numel, 2048, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        o[i] = binary_focal_loss(x[i], t[i], g, a);
      }
    });
  });
  return out;
}

at::Tensor binary_focal_loss_backward_cpu(const at::Tensor& logits_in, const at::Tensor& targets_in,
                                          const at::Tensor& d_losses_in, double gamma, double alpha) {
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor targets = targets_in.to(logits.scalar_type()).contiguous();
  const at::Tensor d_losses = d_losses_in.to(logits.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t numel = logits.numel();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "binary_focal_loss_backward_cpu", [&] {
    const scalar_t* x = logits.data_ptr<scalar_t>();
    const scalar_t* t = targets.data_ptr<scalar_t>();
    const scalar_t* d = d_losses.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const scalar_t g = static_cast<scalar_t>(gamma);
    const scalar_t a = static_cast<scalar_t>(alpha);
    at::parallel_for(0, numel, 2048, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        o[i] = binary_focal_grad(x[i], t[i], g, a) * d[i];
      }
    });
  });
  return out;
}

}  // namespace mrcnn
