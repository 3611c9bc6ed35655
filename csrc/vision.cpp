// pybind11 module maskrcnn_benchmark._C: input checks and device dispatch for every compiled op.
#include <torch/extension.h>

#include <string>

#include "ops.h"

#ifdef WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace mrcnn {

namespace {

void check_boxes(const at::Tensor& boxes, const at::Tensor& scores) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "boxes must be (N, 4), got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "scores must be (N,) with N = ",
              boxes.size(0), ", got ", scores.sizes());
  TORCH_CHECK(boxes.device() == scores.device(), "boxes and scores must be on one device");
}

bool cuda_tensor(const at::Tensor& t, const char* op) {
  if (!t.is_cuda()) {
    return false;
  }
#ifdef WITH_CUDA
  return true;
#else
  TORCH_CHECK(false, op, ": got a CUDA tensor but maskrcnn_benchmark._C was built without CUDA support");
  return false;
#endif
}

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_boxes(boxes, scores);
  if (cuda_tensor(boxes, "nms")) {
#ifdef WITH_CUDA
    return nms_cuda(boxes, scores, std::nullopt, iou_threshold, false);
#endif
  }
  return nms_cpu(boxes, scores, std::nullopt, iou_threshold, false);
}

at::Tensor ml_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& labels,
                  double iou_threshold) {
  check_boxes(boxes, scores);
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == boxes.size(0), "labels must be (N,) with N = ",
              boxes.size(0), ", got ", labels.sizes());
  if (cuda_tensor(boxes, "ml_nms")) {
#ifdef WITH_CUDA
    return nms_cuda(boxes, scores, labels, iou_threshold, true);
#endif
  }
  return nms_cpu(boxes, scores, labels, iou_threshold, true);
}

void check_focal(const at::Tensor& logits, const at::Tensor& targets) {
  TORCH_CHECK(logits.dim() == 2, "logits must be (N, C), got ", logits.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), "targets must be (N,) with N = ",
              logits.size(0), ", got ", targets.sizes());
  TORCH_CHECK(logits.device() == targets.device(), "logits and targets must be on one device");
}

at::Tensor sigmoid_focal_loss_forward(const at::Tensor& logits, const at::Tensor& targets, int64_t num_classes,
                                      double gamma, double alpha) {
  check_focal(logits, targets);
  TORCH_CHECK(logits.size(1) == num_classes, "logits have ", logits.size(1), " classes, num_classes=", num_classes);
  if (cuda_tensor(logits, "sigmoid_focal_loss_forward")) {
#ifdef WITH_CUDA
    return sigmoid_focal_loss_forward_cuda(logits, targets, num_classes, gamma, alpha);
#endif
  }
  return sigmoid_focal_loss_forward_cpu(logits, targets, num_classes, gamma, alpha);
}

at::Tensor sigmoid_focal_loss_backward(const at::Tensor& logits, const at::Tensor& targets,
                                       const at::Tensor& d_losses, int64_t num_classes, double gamma,
                                       double alpha) {
  check_focal(logits, targets);
  TORCH_CHECK(d_losses.sizes() == logits.sizes(), "d_losses must match logits ", logits.sizes());
  if (cuda_tensor(logits, "sigmoid_focal_loss_backward")) {
#ifdef WITH_CUDA
    return sigmoid_focal_loss_backward_cuda(logits, targets, d_losses, num_classes, gamma, alpha);
#endif
  }
  return sigmoid_focal_loss_backward_cpu(logits, targets, d_losses, num_classes, gamma, alpha);
}

at::Tensor binary_focal_loss_forward(const at::Tensor& logits, const at::Tensor& targets, double gamma,
                                     double alpha) {
  TORCH_CHECK(logits.sizes() == targets.sizes(), "targets ", targets.sizes(), " must match logits ",
              logits.sizes());
  if (cuda_tensor(logits, "binary_focal_loss_forward")) {
#ifdef WITH_CUDA
    return binary_focal_loss_forward_cuda(logits, targets, gamma, alpha);
#endif
  }
  return binary_focal_loss_forward_cpu(logits, targets, gamma, alpha);
}

at::Tensor binary_focal_loss_backward(const at::Tensor& logits, const at::Tensor& targets,
                                      const at::Tensor& d_losses, double gamma, double alpha) {
  TORCH_CHECK(logits.sizes() == targets.sizes() && logits.sizes() == d_losses.sizes(),
              "logits, targets and d_losses must have one shape");
  if (cuda_tensor(logits, "binary_focal_loss_backward")) {
#ifdef WITH_CUDA
    return binary_focal_loss_backward_cuda(logits, targets, d_losses, gamma, alpha);
#endif
  }
  return binary_focal_loss_backward_cpu(logits, targets, d_losses, gamma, alpha);
}

at::Tensor dcn_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       const at::Tensor& offset, const at::Tensor& mask, int64_t stride_h, int64_t stride_w,
                       int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups,
                       int64_t deformable_groups) {
  cuda_tensor(input, "modulated_deform_conv_forward");
  return modulated_deform_conv_forward(input, weight, bias, offset, mask, stride_h, stride_w, pad_h, pad_w,
                                       dilation_h, dilation_w, groups, deformable_groups);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> dcn_backward(
    const at::Tensor& input, const at::Tensor& weight, bool with_bias, const at::Tensor& offset,
    const at::Tensor& mask, const at::Tensor& grad_output, int64_t stride_h, int64_t stride_w, int64_t pad_h,
    int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups, int64_t deformable_groups) {
  cuda_tensor(input, "modulated_deform_conv_backward");
  return modulated_deform_conv_backward(input, weight, with_bias, offset, mask, grad_output, stride_h, stride_w,
                                        pad_h, pad_w, dilation_h, dilation_w, groups, deformable_groups);
}

#define MRCNN_STR_(x) #x
#define MRCNN_STR(x) MRCNN_STR_(x)

pybind11::dict build_info() {
  pybind11::dict info;
#ifdef WITH_CUDA
  info["with_cuda"] = true;
  info["cuda_version"] = std::to_string(CUDART_VERSION / 1000) + "." + std::to_string((CUDART_VERSION % 1000) / 10);
#else
  info["with_cuda"] = false;
  info["cuda_version"] = pybind11::none();
#endif
#ifdef MRCNN_CUDA_ARCH_LIST
  info["cuda_arch_list"] = std::string(MRCNN_STR(MRCNN_CUDA_ARCH_LIST));
#else
  info["cuda_arch_list"] = pybind11::none();
#endif
#ifdef MRCNN_TORCH_VERSION
  info["torch_version"] = std::string(MRCNN_STR(MRCNN_TORCH_VERSION));
#else
  info["torch_version"] = pybind11::none();
#endif
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + MRCNN_STR(__GNUC__) + "." + MRCNN_STR(__GNUC_MINOR__) + "." +
                     MRCNN_STR(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
  info["compiler"] = std::string("msvc ") + MRCNN_STR(_MSC_VER);
#else
  info["compiler"] = std::string("unknown");
#endif
  return info;
}

}  // namespace

}  // namespace mrcnn

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Compiled CPU/CUDA kernels of maskrcnn_benchmark (nms, ml_nms, DCNv2, sigmoid focal losses)";
  m.def("nms", &mrcnn::nms, "greedy NMS, +1 area convention; kept indices by decreasing score",
        pybind11::arg("boxes"), pybind11::arg("scores"), pybind11::arg("iou_threshold"));
  m.def("ml_nms", &mrcnn::ml_nms, "class-aware greedy NMS, +1 area convention; kept indices ascending",
        pybind11::arg("boxes"), pybind11::arg("scores"), pybind11::arg("labels"), pybind11::arg("iou_threshold"));
  m.def("modulated_deform_conv_forward", &mrcnn::dcn_forward, "DCNv2 forward");
  m.def("modulated_deform_conv_backward", &mrcnn::dcn_backward,
        "DCNv2 backward -> (grad_input, grad_weight, grad_bias, grad_offset, grad_mask)");
  m.def("sigmoid_focalloss_forward", &mrcnn::sigmoid_focal_loss_forward,
        "multi-class sigmoid focal loss, per element");
  m.def("sigmoid_focalloss_backward", &mrcnn::sigmoid_focal_loss_backward,
        "gradient of the multi-class sigmoid focal loss");
  m.def("binary_focal_loss_forward", &mrcnn::binary_focal_loss_forward, "binary sigmoid focal loss, per element");
  m.def("binary_focal_loss_backward", &mrcnn::binary_focal_loss_backward,
        "gradient of the binary sigmoid focal loss");
  m.def("build_info", &mrcnn::build_info, "how this extension was built");
}
