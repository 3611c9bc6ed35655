// CPU kernels of the modulated deformable convolution (DCNv2): im2col, col2im (grad of input) and the
// gradient with respect to offsets and mask. One image at a time; the matmuls are done by the caller.
// Without conv groups both passes run channels-last in blocks of output positions (contiguous channel runs per
// bilinear corner): 3x to 5x faster than the planar kernels on the DyHead's 256-channel maps. Conv groups use
// the planar kernels, which compute each sampling point's corners and weights once for all channels.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../ops.h"

namespace mrcnn {

namespace {

// One bilinear sample shared by every channel of a deformable group: the four neighbours' plane indices (0 for
// a neighbour outside the image, whose weight is then 0), their bilinear weights and the modulation scalar.
template <typename T>
struct DcnSample {
  int32_t index[4];
  T weight[4];
  T mask;
};

// The four bilinear corners of (h_im, w_im) (top-left, top-right, bottom-left, bottom-right): their plane
// indices (0 for a corner outside the image), whether each lies inside, and the fractions lh, lw. Returns false
// (every corner outside) for a point out of range, which reads 0 and has no gradient.
template <typename T>
bool bilinear_corners(const DcnGeometry& g, T h_im, T w_im, int32_t index[4], bool ok[4], T* lh, T* lw) {
  for (int i = 0; i < 4; ++i) {
    index[i] = 0;
    ok[i] = false;
  }
  *lh = T(0);
  *lw = T(0);
  if (!dcn_in_range(h_im, w_im, g.height, g.width)) {
    return false;
  }
  const int h_low = static_cast<int>(floor(h_im));
  const int w_low = static_cast<int>(floor(w_im));
  *lh = h_im - T(h_low);
  *lw = w_im - T(w_low);
  ok[0] = h_low >= 0 && w_low >= 0;
  ok[1] = h_low >= 0 && w_low + 1 < g.width;
  ok[2] = h_low + 1 < g.height && w_low >= 0;
  ok[3] = h_low + 1 < g.height && w_low + 1 < g.width;
  const int at[4] = {h_low * g.width + w_low, h_low * g.width + w_low + 1, (h_low + 1) * g.width + w_low,
                     (h_low + 1) * g.width + w_low + 1};
  for (int i = 0; i < 4; ++i) {
    if (ok[i]) index[i] = at[i];
  }
  return true;
}

// The four bilinear neighbours of (h_im, w_im), as dcn_bilinear weighs them: plane indices and weights, with
// index 0 and weight 0 for a neighbour outside the image. Returns false (all four zeroed) for a point out of range.
template <typename T>
bool bilinear_neighbours(const DcnGeometry& g, T h_im, T w_im, int32_t index[4], T weight[4]) {
  bool ok[4];
  T lh, lw;
  const bool inside = bilinear_corners(g, h_im, w_im, index, ok, &lh, &lw);
  const T hh = T(1) - lh;
  const T hw = T(1) - lw;
  const T w4[4] = {hh * hw, hh * lw, lh * hw, lh * lw};
  for (int i = 0; i < 4; ++i) {
    weight[i] = ok[i] ? w4[i] : T(0);
  }
  return inside;
}

// The sample of every (deformable group, tap, output position), computed once instead of once per channel.
// Weights are formed exactly as dcn_bilinear forms them, so the columns are bit-identical to a per-channel loop.
template <typename T>
void sample_table(const T* offset, const T* mask, const DcnGeometry& g, DcnSample<T>* table) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  at::parallel_for(0, static_cast<int64_t>(g.deformable_groups) * kernel_size, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gt = begin; gt < end; ++gt) {
      const int group = static_cast<int>(gt / kernel_size);
      const int tap = static_cast<int>(gt % kernel_size);
      for (int h = 0; h < g.out_h; ++h) {
        for (int w = 0; w < g.out_w; ++w) {
          DcnSample<T>& s = table[gt * plane_out + h * g.out_w + w];
          T h_im, w_im;
          dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &s.mask);
          bilinear_neighbours(g, h_im, w_im, s.index, s.weight);
        }
      }
    }
  });
}

// Columns from the sample table. Blocks of channels run in parallel; inside a block, a stretch of the table
// that fits in L1 is applied to every channel of the block before moving on.
template <typename T>
void im2col_impl(const T* input, const T* offset, const T* mask, const DcnGeometry& g, T* columns) {
  constexpr int64_t kChannelBlock = 8;
  constexpr int64_t kTableBlock = 512;
  const int64_t kernel_size = static_cast<int64_t>(g.kernel_h) * g.kernel_w;
  const int64_t plane_in = static_cast<int64_t>(g.height) * g.width;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const int64_t group_entries = kernel_size * plane_out;
  const int channels_per_group = g.channels / g.deformable_groups;
  std::vector<DcnSample<T>> table(static_cast<size_t>(g.deformable_groups * group_entries));
  sample_table(offset, mask, g, table.data());
  const int64_t blocks = (g.channels + kChannelBlock - 1) / kChannelBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t block_begin, int64_t block_end) {
    for (int64_t block = block_begin; block < block_end; ++block) {
      const int64_t c_begin = block * kChannelBlock;
      const int64_t c_end = std::min<int64_t>(c_begin + kChannelBlock, g.channels);
      for (int64_t e_begin = 0; e_begin < group_entries; e_begin += kTableBlock) {
        const int64_t e_end = std::min(e_begin + kTableBlock, group_entries);
        for (int64_t c = c_begin; c < c_end; ++c) {
          const T* im = input + c * plane_in;
          const DcnSample<T>* samples = table.data() + (c / channels_per_group) * group_entries;
          T* col = columns + c * group_entries;  // rows c*K .. c*K+K-1, each plane_out long: entry = tap*P + pos
          for (int64_t e = e_begin; e < e_end; ++e) {
            const DcnSample<T>& s = samples[e];
            col[e] = s.mask * (s.weight[0] * im[s.index[0]] + s.weight[1] * im[s.index[1]] +
                               s.weight[2] * im[s.index[2]] + s.weight[3] * im[s.index[3]]);
          }
        }
      }
    }
  });
}

// Channels-last columns for the forward pass: input_cl is one image as (H*W, C); columns are (n, K*C) for the
// output positions first..first+n-1, entry tap*C + c. Each sample then reads its four neighbours as contiguous
// runs of the group's channels, which the compiler vectorises, instead of four scattered loads per channel.
// Every value is formed exactly as im2col_impl forms it (same weights, same order of operations).
template <typename T>
void im2col_channels_last_impl(const T* input_cl, const T* offset, const T* mask, const DcnGeometry& g,
                               int64_t first, int64_t n, T* columns) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t channels = g.channels;
  const int channels_per_group = g.channels / g.deformable_groups;
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int pos = static_cast<int>(first + i);
      const int h = pos / g.out_w;
      const int w = pos % g.out_w;
      for (int tap = 0; tap < kernel_size; ++tap) {
        for (int group = 0; group < g.deformable_groups; ++group) {
          T* __restrict__ col = columns + (i * kernel_size + tap) * channels + group * channels_per_group;
          T h_im, w_im, m;
          dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &m);
          int32_t index[4];
          T wt[4];
          if (!bilinear_neighbours(g, h_im, w_im, index, wt)) {
            std::fill(col, col + channels_per_group, T(0));
            continue;
          }
          const T* base = input_cl + static_cast<int64_t>(group) * channels_per_group;
          const T* __restrict__ v0 = base + index[0] * channels;
          const T* __restrict__ v1 = base + index[1] * channels;
          const T* __restrict__ v2 = base + index[2] * channels;
          const T* __restrict__ v3 = base + index[3] * channels;
          for (int c = 0; c < channels_per_group; ++c) {
            col[c] = m * (wt[0] * v0[c] + wt[1] * v1[c] + wt[2] * v2[c] + wt[3] * v3[c]);
          }
        }
      }
    }
  });
}

// Backward pass of one block of output positions, channels-last: grad_columns (n, K*C) for the positions
// first..first+n-1 (entry tap*C + c), input_cl (H*W, C). Adds the input gradient to grad_input_cl (H*W, C) and
// writes the offset and mask gradients of those positions. Two passes over the block:
// 1. positions in parallel: each (position, tap, group) sums its gradient against the four corners' contiguous
//    channel runs (four dot products), which gives d offset_h, d offset_w and d mask; the sample is kept;
// 2. channel ranges in parallel: each sample scatters mask * grad to its corners, so no two threads write the
//    same element and no atomics are needed.
// The per-element formulas are col2im_impl's and col2im_coord_impl's; only the order of the sums differs.
template <typename T>
void col2im_channels_last_impl(const T* grad_columns, const T* input_cl, const T* offset, const T* mask,
                               const DcnGeometry& g, int64_t first, int64_t n, T* grad_input_cl, T* grad_offset,
                               T* grad_mask) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int64_t channels = g.channels;
  const int channels_per_group = g.channels / g.deformable_groups;
  const int64_t plane_out = static_cast<int64_t>(g.out_h) * g.out_w;
  const int64_t per_position = static_cast<int64_t>(kernel_size) * g.deformable_groups;
  std::vector<DcnSample<T>> samples(static_cast<size_t>(n * per_position));
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t pos = first + i;
      const int h = static_cast<int>(pos / g.out_w);
      const int w = static_cast<int>(pos % g.out_w);
      for (int tap = 0; tap < kernel_size; ++tap) {
        for (int group = 0; group < g.deformable_groups; ++group) {
          DcnSample<T>& s = samples[(i * kernel_size + tap) * g.deformable_groups + group];
          T h_im, w_im, m;
          dcn_sample_point(g, offset, mask, group, tap, h, w, &h_im, &w_im, &m);
          bool ok[4];
          T lh, lw;
          bilinear_corners(g, h_im, w_im, s.index, ok, &lh, &lw);  // out of range: every corner off
          const T hh = T(1) - lh;
          const T hw = T(1) - lw;
          const T w4[4] = {hh * hw, hh * lw, lh * hw, lh * lw};
          T dot[4] = {T(0), T(0), T(0), T(0)};
          const T* __restrict__ gcol = grad_columns + (i * kernel_size + tap) * channels +
                                       static_cast<int64_t>(group) * channels_per_group;
          const T* base = input_cl + static_cast<int64_t>(group) * channels_per_group;
          for (int j = 0; j < 4; ++j) {
            s.weight[j] = ok[j] ? w4[j] : T(0);
            if (!ok[j]) continue;
            const T* __restrict__ v = base + s.index[j] * channels;
            T acc = T(0);
            for (int c = 0; c < channels_per_group; ++c) acc += gcol[c] * v[c];
            dot[j] = acc;
          }
          s.mask = m;
          const int64_t off = (static_cast<int64_t>(group) * 2 * kernel_size + 2 * tap) * plane_out + pos;
          grad_offset[off] = m * (hw * (dot[2] - dot[0]) + lw * (dot[3] - dot[1]));
          grad_offset[off + plane_out] = m * (hh * (dot[1] - dot[0]) + lh * (dot[3] - dot[2]));
          grad_mask[(static_cast<int64_t>(group) * kernel_size + tap) * plane_out + pos] =
              s.weight[0] * dot[0] + s.weight[1] * dot[1] + s.weight[2] * dot[2] + s.weight[3] * dot[3];
        }
      }
    }
  });
  at::parallel_for(0, channels, 16, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t i = 0; i < n; ++i) {
      for (int tap = 0; tap < kernel_size; ++tap) {
        for (int group = 0; group < g.deformable_groups; ++group) {
          const DcnSample<T>& s = samples[(i * kernel_size + tap) * g.deformable_groups + group];
          const int64_t lo = std::max<int64_t>(c_begin, static_cast<int64_t>(group) * channels_per_group);
          const int64_t hi = std::min<int64_t>(c_end, static_cast<int64_t>(group + 1) * channels_per_group);
          const T* __restrict__ gcol = grad_columns + (i * kernel_size + tap) * channels;
          for (int j = 0; j < 4; ++j) {
            if (s.weight[j] == T(0)) continue;
            T* __restrict__ dst = grad_input_cl + s.index[j] * channels;
            const T wj = s.weight[j];
            const T m = s.mask;
            for (int64_t c = lo; c < hi; ++c) dst[c] += wj * (m * gcol[c]);
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
            int32_t index[4];
            T weight[4];
            if (!bilinear_neighbours(g, h_im, w_im, index, weight)) {
              continue;
            }
            const T val = m * gcol[h * g.out_w + w];
            for (int i = 0; i < 4; ++i) {
              if (weight[i] != T(0)) gim[index[i]] += weight[i] * val;
            }
          }
        }
      }
    }
  });
}

// For every (group, tap, output position): d offset_h, d offset_w and d mask (dcn_coord_grad_point, the CUDA
// kernel's arithmetic).
template <typename T>
void col2im_coord_impl(const T* grad_columns, const T* input, const T* offset, const T* mask, const DcnGeometry& g,
                       T* grad_offset, T* grad_mask) {
  const int kernel_size = g.kernel_h * g.kernel_w;
  const int plane_out = g.out_h * g.out_w;
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
          dcn_coord_grad_point(g, grad_columns, input, offset, mask, group, tap, h, w, goff_h + pos, goff_w + pos,
                               gmask + pos);
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

void dcn_im2col_channels_last_cpu(const at::Tensor& input_cl, const at::Tensor& offset_b, const at::Tensor& mask_b,
                                  const DcnGeometry& geom, int64_t first, int64_t count, at::Tensor& columns) {
  AT_DISPATCH_FLOATING_TYPES(input_cl.scalar_type(), "dcn_im2col_channels_last_cpu", [&] {
    im2col_channels_last_impl<scalar_t>(input_cl.data_ptr<scalar_t>(), offset_b.data_ptr<scalar_t>(),
                                        mask_b.data_ptr<scalar_t>(), geom, first, count,
                                        columns.data_ptr<scalar_t>());
  });
}

void dcn_col2im_channels_last_cpu(const at::Tensor& grad_columns, const at::Tensor& input_cl,
                                  const at::Tensor& offset_b, const at::Tensor& mask_b, const DcnGeometry& geom,
                                  int64_t first, int64_t count, at::Tensor& grad_input_cl, at::Tensor& grad_offset_b,
                                  at::Tensor& grad_mask_b) {
  AT_DISPATCH_FLOATING_TYPES(grad_columns.scalar_type(), "dcn_col2im_channels_last_cpu", [&] {
    col2im_channels_last_impl<scalar_t>(grad_columns.data_ptr<scalar_t>(), input_cl.data_ptr<scalar_t>(),
                                        offset_b.data_ptr<scalar_t>(), mask_b.data_ptr<scalar_t>(), geom, first,
                                        count, grad_input_cl.data_ptr<scalar_t>(), grad_offset_b.data_ptr<scalar_t>(),
                                        grad_mask_b.data_ptr<scalar_t>());
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
