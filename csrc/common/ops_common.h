// Shared, device-agnostic helpers for the maskrcnn_benchmark._C kernels.
//
// Everything here is a small inline function usable from host code (CPU kernels) and from device code (CUDA
// kernels), so the CPU and the CUDA implementations evaluate literally the same arithmetic.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MRCNN_HD __host__ __device__ __forceinline__
#else
#define MRCNN_HD inline
#endif

namespace mrcnn {

#if !defined(__CUDACC__) && !defined(__HIPCC__)
// Host compilers: pick the float/double overloads of the math functions from std.
using std::exp;
using std::floor;
using std::log1p;
using std::pow;
#endif

// ------------------------------------------------------------------------------------------------------------
// Boxes: IoU with the legacy "+1" pixel convention (width = x2 - x1 + 1), the convention of upstream's
// nms / ml_nms kernels. The arithmetic order follows upstream (right - left + 1) so results agree bit for bit.
template <typename T>
MRCNN_HD T iou_plus_one(const T* a, const T* b) {
  const T left = a[0] > b[0] ? a[0] : b[0];
  const T right = a[2] < b[2] ? a[2] : b[2];
  const T top = a[1] > b[1] ? a[1] : b[1];
  const T bottom = a[3] < b[3] ? a[3] : b[3];
  T width = right - left + T(1);
  T height = bottom - top + T(1);
  width = width > T(0) ? width : T(0);
  height = height > T(0) ? height : T(0);
  const T inter = width * height;
  const T area_a = (a[2] - a[0] + T(1)) * (a[3] - a[1] + T(1));
  const T area_b = (b[2] - b[0] + T(1)) * (b[3] - b[1] + T(1));
  return inter / (area_a + area_b - inter);
}

// ------------------------------------------------------------------------------------------------------------
// Modulated deformable convolution (DCNv2) sampling helpers.
//
// Images are one channel plane `im` of size height x width (row-major). A sampling point (h, w) outside
// (-1, height) x (-1, width) reads 0; inside, it is bilinearly interpolated with zero padding.

template <typename T>
MRCNN_HD bool dcn_in_range(T h, T w, int height, int width) {
  return h > T(-1) && w > T(-1) && h < T(height) && w < T(width);
}

template <typename T>
MRCNN_HD T dcn_bilinear(const T* im, int height, int width, T h, T w) {
  if (!dcn_in_range(h, w, height, width)) {
    return T(0);
  }
  const int h_low = static_cast<int>(floor(h));
  const int w_low = static_cast<int>(floor(w));
  const int h_high = h_low + 1;
  const int w_high = w_low + 1;
  const T lh = h - T(h_low);
  const T lw = w - T(w_low);
  const T hh = T(1) - lh;
  const T hw = T(1) - lw;
  const T v1 = (h_low >= 0 && w_low >= 0) ? im[h_low * width + w_low] : T(0);
  const T v2 = (h_low >= 0 && w_high < width) ? im[h_low * width + w_high] : T(0);
  const T v3 = (h_high < height && w_low >= 0) ? im[h_high * width + w_low] : T(0);
  const T v4 = (h_high < height && w_high < width) ? im[h_high * width + w_high] : T(0);
  return hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4;
}

// Partial derivatives of dcn_bilinear with respect to the sampling coordinates (h, w).
template <typename T>
MRCNN_HD void dcn_bilinear_coord_grad(const T* im, int height, int width, T h, T w, T* d_h, T* d_w) {
  if (!dcn_in_range(h, w, height, width)) {
    *d_h = T(0);
    *d_w = T(0);
    return;
  }
  const int h_low = static_cast<int>(floor(h));
  const int w_low = static_cast<int>(floor(w));
  const int h_high = h_low + 1;
  const int w_high = w_low + 1;
  const T lh = h - T(h_low);
  const T lw = w - T(w_low);
  const T v1 = (h_low >= 0 && w_low >= 0) ? im[h_low * width + w_low] : T(0);
  const T v2 = (h_low >= 0 && w_high < width) ? im[h_low * width + w_high] : T(0);
  const T v3 = (h_high < height && w_low >= 0) ? im[h_high * width + w_low] : T(0);
  const T v4 = (h_high < height && w_high < width) ? im[h_high * width + w_high] : T(0);
  *d_h = (T(1) - lw) * (v3 - v1) + lw * (v4 - v2);
  *d_w = (T(1) - lh) * (v2 - v1) + lh * (v4 - v3);
}

// Geometry of one deformable convolution, shared by all DCN kernels.
struct DcnGeometry {
  int channels;           // input channels C
  int height, width;      // input H, W
  int kernel_h, kernel_w;
  int pad_h, pad_w;
  int stride_h, stride_w;
  int dilation_h, dilation_w;
  int out_h, out_w;       // output Ho, Wo (offset / mask are read with this layout)
  int deformable_groups;
};

// Offsets of one image: (2 * K * dg, Ho, Wo) with (dy, dx) pairs per tap, taps row-major. Mask: (K * dg, Ho, Wo).
template <typename T>
MRCNN_HD void dcn_sample_point(const DcnGeometry& g, const T* offset, const T* mask, int group, int tap,
                               int h_out, int w_out, T* h_im, T* w_im, T* m) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int plane = g.out_h * g.out_w;
  const int pos = h_out * g.out_w + w_out;
  const int64_t off_base = (static_cast<int64_t>(group) * 2 * kernel_size + 2 * tap) * plane + pos;
  const T off_h = offset[off_base];
  const T off_w = offset[off_base + plane];
  *m = mask[(static_cast<int64_t>(group) * kernel_size + tap) * plane + pos];
  const int i = tap / g.kernel_w;
  const int j = tap % g.kernel_w;
  *h_im = T(h_out * g.stride_h - g.pad_h + i * g.dilation_h) + off_h;
  *w_im = T(w_out * g.stride_w - g.pad_w + j * g.dilation_w) + off_w;
}

// The offset and mask gradients of one sampling point (deformable group, tap, output position h_out, w_out) of
// one image: d offset_h, d offset_w and d mask, summed over the group's channels. input: (C, H, W);
// grad_columns: (C * K, Ho * Wo), row c * K + tap.
template <typename T>
MRCNN_HD void dcn_coord_grad_point(const DcnGeometry& g, const T* grad_columns, const T* input, const T* offset,
                                   const T* mask, int group, int tap, int h_out, int w_out, T* d_offset_h,
                                   T* d_offset_w, T* d_mask) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t plane_in = static_cast<int64_t>(g.height) * g.width;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const int64_t pos = static_cast<int64_t>(h_out) * g.out_w + w_out;
  const int channels_per_group = g.channels / g.deformable_groups;
  T h_im, w_im, m;
  dcn_sample_point(g, offset, mask, group, tap, h_out, w_out, &h_im, &w_im, &m);
  T acc_h = 0, acc_w = 0, acc_m = 0;
  for (int cc = 0; cc < channels_per_group; ++cc) {
    const int64_t c = static_cast<int64_t>(group) * channels_per_group + cc;
    const T gcol = grad_columns[(c * kernel_size + tap) * plane_out + pos];
    const T* im = input + c * plane_in;
    T d_h, d_w;
    dcn_bilinear_coord_grad(im, g.height, g.width, h_im, w_im, &d_h, &d_w);
    acc_h += gcol * m * d_h;
    acc_w += gcol * m * d_w;
    acc_m += gcol * dcn_bilinear(im, g.height, g.width, h_im, w_im);
  }
  *d_offset_h = acc_h;
  *d_offset_w = acc_w;
  *d_mask = acc_m;
}

// ------------------------------------------------------------------------------------------------------------
// Sigmoid focal loss, numerically stable forms: log(p) = -softplus(-x), log(1 - p) = -softplus(x).

template <typename T>
MRCNN_HD T stable_softplus(T x) {
  // softplus(x) = max(x, 0) + log1p(exp(-|x|))
  const T ax = x >= T(0) ? x : -x;
  return (x > T(0) ? x : T(0)) + log1p(exp(-ax));
}

template <typename T>
MRCNN_HD T stable_sigmoid(T x) {
  if (x >= T(0)) {
    return T(1) / (T(1) + exp(-x));
  }
  const T e = exp(x);
  return e / (T(1) + e);
}

// base^gamma with the common exponents computed exactly and cheaply (gamma = 2 in every FIBER config).
template <typename T>
MRCNN_HD T pow_gamma(T base, T gamma) {
  if (gamma == T(2)) return base * base;
  if (gamma == T(1)) return base;
  if (gamma == T(0)) return T(1);
  return pow(base, gamma);
}

// Positive term of the multi-class focal loss: -alpha * (1 - p)^gamma * log(p), and its derivative in x.
template <typename T>
MRCNN_HD T focal_pos_loss(T x, T gamma, T alpha) {
  const T p = stable_sigmoid(x);
  return alpha * pow_gamma(T(1) - p, gamma) * stable_softplus(-x);
}
template <typename T>
MRCNN_HD T focal_pos_grad(T x, T gamma, T alpha) {
  const T p = stable_sigmoid(x);
  // d/dx [-(1-p)^g log p] = (1-p)^g * (g * p * log p - (1 - p))
  return alpha * pow_gamma(T(1) - p, gamma) * (-gamma * p * stable_softplus(-x) - (T(1) - p));
}

// Negative term: -(1 - alpha) * p^gamma * log(1 - p), and its derivative in x.
template <typename T>
MRCNN_HD T focal_neg_loss(T x, T gamma, T alpha) {
  const T p = stable_sigmoid(x);
  return (T(1) - alpha) * pow_gamma(p, gamma) * stable_softplus(x);
}
template <typename T>
MRCNN_HD T focal_neg_grad(T x, T gamma, T alpha) {
  const T p = stable_sigmoid(x);
  // d/dx [-p^g log(1-p)] = p^g * (p - g * (1 - p) * log(1 - p))
  return (T(1) - alpha) * pow_gamma(p, gamma) * (p + gamma * (T(1) - p) * stable_softplus(x));
}

// Binary (token) focal loss with a target t in [0, 1]:
//   loss = alpha_t * (1 - p_t)^gamma * bce(x, t), p_t = p t + (1 - p)(1 - t),
//   alpha_t = alpha t + (1 - alpha)(1 - t) when alpha >= 0, else 1.
template <typename T>
MRCNN_HD T binary_focal_loss(T x, T t, T gamma, T alpha) {
  const T p = stable_sigmoid(x);
  const T bce = stable_softplus(x) - x * t;
  const T one_minus_pt = T(1) - (p * t + (T(1) - p) * (T(1) - t));
  const T alpha_t = alpha >= T(0) ? alpha * t + (T(1) - alpha) * (T(1) - t) : T(1);
  return alpha_t * pow_gamma(one_minus_pt, gamma) * bce;
}
template <typename T>
MRCNN_HD T binary_focal_grad(T x, T t, T gamma, T alpha) {
  const T p = stable_sigmoid(x);
  const T bce = stable_softplus(x) - x * t;
  const T one_minus_pt = T(1) - (p * t + (T(1) - p) * (T(1) - t));
  const T alpha_t = alpha >= T(0) ? alpha * t + (T(1) - alpha) * (T(1) - t) : T(1);
  // d(1 - p_t)/dx = -(2t - 1) p (1 - p)
  const T d_one_minus_pt = -(T(2) * t - T(1)) * p * (T(1) - p);
  T d_mod = T(0);
  if (gamma != T(0) && one_minus_pt > T(0)) {
    d_mod = gamma * pow_gamma(one_minus_pt, gamma - T(1)) * d_one_minus_pt;
  }
  return alpha_t * (d_mod * bce + pow_gamma(one_minus_pt, gamma) * (p - t));
}

}  // namespace mrcnn
