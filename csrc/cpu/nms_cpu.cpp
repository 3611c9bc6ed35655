// Greedy NMS on the CPU with the "+1" area convention, optionally class-aware.
#include <vector>

#include "../ops.h"

namespace mrcnn {

namespace {

template <typename scalar_t>
at::Tensor nms_cpu_impl(const at::Tensor& boxes, const at::Tensor& order, const int64_t* labels,
                        double iou_threshold) {
  const int64_t n = boxes.size(0);
  const scalar_t* b = boxes.data_ptr<scalar_t>();
  const int64_t* ord = order.data_ptr<int64_t>();
  const scalar_t thresh = static_cast<scalar_t>(iou_threshold);
  std::vector<uint8_t> suppressed(n, 0);
  std::vector<int64_t> keep;
  keep.reserve(n);
  for (int64_t oi = 0; oi < n; ++oi) {
    const int64_t i = ord[oi];
    if (suppressed[oi]) {
      continue;
    }
    keep.push_back(i);
    for (int64_t oj = oi + 1; oj < n; ++oj) {
      if (suppressed[oj]) {
        continue;
      }
      const int64_t j = ord[oj];
      if (labels != nullptr && labels[i] != labels[j]) {
        continue;
      }
      if (iou_plus_one(b + 4 * i, b + 4 * j) > thresh) {
        suppressed[oj] = 1;
      }
    }
  }
  at::Tensor out = at::empty({static_cast<int64_t>(keep.size())}, boxes.options().dtype(at::kLong));
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}

}  // namespace

at::Tensor nms_cpu(const at::Tensor& boxes_in, const at::Tensor& scores, const std::optional<at::Tensor>& labels_in,
                   double iou_threshold, bool sort_ascending) {
  if (boxes_in.size(0) == 0) {
    return at::empty({0}, boxes_in.options().dtype(at::kLong));
  }
  const at::Tensor boxes = boxes_in.contiguous();
  // Stable sort: among equal scores the lower index wins, so every path agrees on ties.
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  at::Tensor labels;
  const int64_t* labels_ptr = nullptr;
  if (labels_in.has_value()) {
    labels = labels_in->to(at::kLong).contiguous();
    labels_ptr = labels.data_ptr<int64_t>();
  }
  at::Tensor keep;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms_cpu", [&] {
    keep = nms_cpu_impl<scalar_t>(boxes, order, labels_ptr, iou_threshold);
  });
  if (sort_ascending) {
    keep = std::get<0>(keep.sort(0, false));
  }
  return keep;
}

}  // namespace mrcnn
