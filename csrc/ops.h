// Declarations of the device-specific kernels behind maskrcnn_benchmark._C.
// The device-independent entry points (input checks, dispatch on device, DCN matmuls) live in vision.cpp and
// deform_conv.cpp; cpu/*.cpp and cuda/*.cu implement the per-device kernels declared here.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

#include "common/ops_common.h"

namespace mrcnn {

// ---- NMS (+1 area convention). `labels` (int64, same length) makes it class-aware (IoU 0 across labels).
// Returns kept indices (int64, on the boxes' device): by decreasing score, or ascending when sort_ascending.
at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& labels,
                   double iou_threshold, bool sort_ascending);

// ---- DCNv2 per-image kernels. input_b: (C, H, W); offset_b: (2*K*dg, Ho, Wo); mask_b: (K*dg, Ho, Wo);
// columns: (C*K, Ho*Wo). All contiguous, same dtype.
void dcn_im2col_cpu(const at::Tensor& input_b, const at::Tensor& offset_b, const at::Tensor& mask_b,
                    const DcnGeometry& geom, at::Tensor& columns);
// Forward columns in channels-last order: input_cl (H*W, C) contiguous; columns (count, K*C) for the output
// positions first..first+count-1, entry tap*C + c (the weight is multiplied as (O, kh, kw, C)).
void dcn_im2col_channels_last_cpu(const at::Tensor& input_cl, const at::Tensor& offset_b, const at::Tensor& mask_b,
                                  const DcnGeometry& geom, int64_t first, int64_t count, at::Tensor& columns);
// Backward of one block of output positions in channels-last order: grad_columns (count, K*C) as above,
// input_cl and grad_input_cl (H*W, C); adds to grad_input_cl, writes the block's grad_offset_b / grad_mask_b.
void dcn_col2im_channels_last_cpu(const at::Tensor& grad_columns, const at::Tensor& input_cl,
                                  const at::Tensor& offset_b, const at::Tensor& mask_b, const DcnGeometry& geom,
                                  int64_t first, int64_t count, at::Tensor& grad_input_cl, at::Tensor& grad_offset_b,
                                  at::Tensor& grad_mask_b);
void dcn_col2im_cpu(const at::Tensor& grad_columns, const at::Tensor& offset_b, const at::Tensor& mask_b,
                    const DcnGeometry& geom, at::Tensor& grad_input_b);
void dcn_col2im_coord_cpu(const at::Tensor& grad_columns, const at::Tensor& input_b, const at::Tensor& offset_b,
                          const at::Tensor& mask_b, const DcnGeometry& geom, at::Tensor& grad_offset_b,
                          at::Tensor& grad_mask_b);

// ---- Sigmoid focal losses (per element).
at::Tensor sigmoid_focal_loss_forward_cpu(const at::Tensor& logits, const at::Tensor& targets, int64_t num_classes,
                                          double gamma, double alpha);
at::Tensor sigmoid_focal_loss_backward_cpu(const at::Tensor& logits, const at::Tensor& targets,
                                           const at::Tensor& d_losses, int64_t num_classes, double gamma,
                                           double alpha);
at::Tensor binary_focal_loss_forward_cpu(const at::Tensor& logits, const at::Tensor& targets, double gamma,
                                         double alpha);
at::Tensor binary_focal_loss_backward_cpu(const at::Tensor& logits, const at::Tensor& targets,
                                          const at::Tensor& d_losses, double gamma, double alpha);

#ifdef WITH_CUDA
at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& labels,
                    double iou_threshold, bool sort_ascending);
void dcn_im2col_cuda(const at::Tensor& input_b, const at::Tensor& offset_b, const at::Tensor& mask_b,
                     const DcnGeometry& geom, at::Tensor& columns);
// Forward sampling of images first..first+count-1 of contiguous input (B, C, H, W) / offset / mask into
// columns (count, C*K, Ho*Wo), one launch; float, double, half and bfloat16 (coordinates in float for the last two).
void dcn_im2col_batched_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                             int64_t first, int64_t count, const DcnGeometry& geom, at::Tensor& columns);
void dcn_col2im_cuda(const at::Tensor& grad_columns, const at::Tensor& offset_b, const at::Tensor& mask_b,
                     const DcnGeometry& geom, at::Tensor& grad_input_b);
void dcn_col2im_coord_cuda(const at::Tensor& grad_columns, const at::Tensor& input_b, const at::Tensor& offset_b,
                           const at::Tensor& mask_b, const DcnGeometry& geom, at::Tensor& grad_offset_b,
                           at::Tensor& grad_mask_b);
at::Tensor sigmoid_focal_loss_forward_cuda(const at::Tensor& logits, const at::Tensor& targets,
                                           int64_t num_classes, double gamma, double alpha);
at::Tensor sigmoid_focal_loss_backward_cuda(const at::Tensor& logits, const at::Tensor& targets,
                                            const at::Tensor& d_losses, int64_t num_classes, double gamma,
                                            double alpha);
at::Tensor binary_focal_loss_forward_cuda(const at::Tensor& logits, const at::Tensor& targets, double gamma,
                                          double alpha);
at::Tensor binary_focal_loss_backward_cuda(const at::Tensor& logits, const at::Tensor& targets,
                                           const at::Tensor& d_losses, double gamma, double alpha);
#endif

// ---- Device-independent entry points (deform_conv.cpp).
at::Tensor modulated_deform_conv_forward(const at::Tensor& input, const at::Tensor& weight,
                                         const std::optional<at::Tensor>& bias, const at::Tensor& offset,
                                         const at::Tensor& mask, int64_t stride_h, int64_t stride_w,
                                         int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                                         int64_t groups, int64_t deformable_groups);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> modulated_deform_conv_backward(
    const at::Tensor& input, const at::Tensor& weight, bool with_bias, const at::Tensor& offset,
    const at::Tensor& mask, const at::Tensor& grad_output, int64_t stride_h, int64_t stride_w, int64_t pad_h,
    int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups, int64_t deformable_groups);

}  // namespace mrcnn
