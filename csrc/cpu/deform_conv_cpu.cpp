// CPU kernels of the modulated deformable convolution (DCNv2): im2col, col2im (grad of input) and the
// gradient with respect to offsets and mask. One image at a time; the matmuls are done by the caller.
#include <ATen/Parallel.h>

#include "../ops.h"

namespace mrcnn {

namespace {

template <typename T>
void im2col_impl(const T* input, const T* offset, const T* mask, const DcnGeometry& g, T* columns) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int plane_in = g.height * g.width;
  const int plane_out = g.out_h * g.out_w;
  const int channels_per_group = g.channels / g.deformable_groups;
  at::parallel_for(0, g.channels, 1, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      const int group = static_cast<int>(c) / channels_per_group;
      const T* im = input + c * plane_in;
      for (int tap = 0; tap < kernel_size; ++tap) {
        T* col = columns + (c * kernel_size + tap) * static_cast<int64_t>(plane_out);
        for (int h = 0; h < g.out_h; ++h) {
          for (int w = 0; w < g.out_w; ++w) {
            T h_im, w_im, m;
            dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &m);
            col[h * g.out_w + w] = m * dcn_bilinear(im, g.height, g.width, h_im, w_im);
          }
        }
      }
    }
  });
}

// Scatters grad_columns * mask back to the four bilinear neighbours. Each channel writes only its own plane,
// so channels run in parallel without atomics.
template <typename T>
void col2im_impl(const T* grad_columns, const T* offset, const T* mask, const DcnGeometry& g, T* grad_input) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int plane_in = g.height * g.width;
  const int plane_out = g.out_h * g.out_w;
  const int channels_per_group = g.channels / g.deformable_groups;
  at::parallel_for(0, g.channels, 1, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      const int group = static_cast<int>(c) / channels_per_group;
      T* gim = grad_input + c * plane_in;
      for (int tap = 0; tap < kernel_size; ++tap) {
        const T* gcol = grad_columns + (c * kernel_size + tap) * static_cast<int64_t>(plane_out);
        for (int h = 0; h < g.out_h; ++h) {
          for (int w = 0; w < g.out_w; ++w) {
            T h_im, w_im, m;
            dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &m);
            if (!dcn_in_range(h_im, w_im, g.height, g.width)) {
              continue;
            }
            const T val = m * gcol[h * g.out_w + w];
            const int h_low = static_cast<int>(floor(h_im));
            const int w_low = static_cast<int>(floor(w_im));
            const T lh = h_im - T(h_low);
            const T lw = w_im - T(w_low);
            const T hh = T(1) - lh;
            const T hw = T(1) - lw;
            const bool top_ok = h_low >= 0;
            const bool bottom_ok = h_low + 1 < g.height;
            const bool left_ok = w_low >= 0;
            const bool right_ok = w_low + 1 < g.width;
            if (top_ok && left_ok) gim[h_low * g.width + w_low] += hh * hw * val;
            if (top_ok && right_ok) gim[h_low * g.width + w_low + 1] += hh * lw * val;
            if (bottom_ok && left_ok) gim[(h_low + 1) * g.width + w_low] += lh * hw * val;
            if (bottom_ok && right_ok) gim[(h_low + 1) * g.width + w_low + 1] += lh * lw * val;
          }
        }
      }
    }
  });
}

// For every (group, tap, output position): d offset_h, d offset_w and d mask, summed over the group's channels.
template <typename T>
void col2im_coord_impl(const T* grad_columns, const T* input, const T* offset, const T* mask, const DcnGeometry& g,
                       T* grad_offset, T* grad_mask) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int plane_in = g.height * g.width;
  const int plane_out = g.out_h * g.out_w;
  const int channels_per_group = g.channels / g.deformable_groups;
  const int64_t total = static_cast<int64_t>(g.deformable_groups) * kernel_size;
  at::parallel_for(0, total, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gt = begin; gt < end; ++gt) {
      const int group = static_cast<int>(gt / kernel_size);
      const int tap = static_cast<int>(gt % kernel_size);
      T* goff_h = grad_offset + (static_cast<int64_t>(group) * 2 * kernel_size + 2 * tap) * plane_out;
      T* goff_w = goff_h + plane_out;
      T* gmask = grad_mask + (static_cast<int64_t>(group) * kernel_size + tap) * plane_out;
      for (int h = 0; h < g.out_h; ++h) {
        for (int w = 0; w < g.out_w; ++w) {
          const int pos = h * g.out_w + w;
          T h_im, w_im, m;
          dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &m);
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
          goff_h[pos] = acc_h;
          goff_w[pos] = acc_w;
          gmask[pos] = acc_m;
        }
      }
    }
  });
}

}  // namespace

void dcn_im2col_cpu(const at::Tensor& input_b, const at::Tensor& offset_b, const at::Tensor& mask_b,
                    const DcnGeometry& geom, at::Tensor& columns) {
  AT_DISPATCH_FLOATING_TYPES(input_b.scalar_type(), "dcn_im2col_cpu", [&] {
    im2col_impl<scalar_t>(input_b.data_ptr<scalar_t>(), offset_b.data_ptr<scalar_t>(), mask_b.data_ptr<scalar_t>(),
                          geom, columns.data_ptr<scalar_t>());
  });
}

void dcn_col2im_cpu(const at::Tensor& grad_columns, const at::Tensor& offset_b, const at::Tensor& mask_b,
                    const DcnGeometry& geom, at::Tensor& grad_input_b) {
  AT_DISPATCH_FLOATING_TYPES(grad_columns.scalar_type(), "dcn_col2im_cpu", [&] {
    col2im_impl<scalar_t>(grad_columns.data_ptr<scalar_t>(), offset_b.data_ptr<scalar_t>(),
                          mask_b.data_ptr<scalar_t>(), geom, grad_input_b.data_ptr<scalar_t>());
  });
}

void dcn_col2im_coord_cpu(const at::Tensor& grad_columns, const at::Tensor& input_b, const at::Tensor& offset_b,
                          const at::Tensor& mask_b, const DcnGeometry& geom, at::Tensor& grad_offset_b,
                          at::Tensor& grad_mask_b) {
  AT_DISPATCH_FLOATING_TYPES(grad_columns.scalar_type(), "dcn_col2im_coord_cpu", [&] {
    col2im_coord_impl<scalar_t>(grad_columns.data_ptr<scalar_t>(), input_b.data_ptr<scalar_t>(),
                                offset_b.data_ptr<scalar_t>(), mask_b.data_ptr<scalar_t>(), geom,
                                grad_offset_b.data_ptr<scalar_t>(), grad_mask_b.data_ptr<scalar_t>());
  });
}

}  // namespace mrcnn
