// Greedy NMS on the CPU with the "+1" area convention, optionally class-aware.
//
// Boxes are copied into score order first (contiguous, cache friendly). Class-aware NMS runs the greedy loop
// separately on each label's boxes, which is equivalent (IoU across labels counts as 0) and avoids the
// quadratic scan over all other labels.
#include <algorithm>
#include <unordered_map>
#include <vector>

#include "../ops.h"

namespace mrcnn {

namespace {

// Greedy suppression over `count` boxes given in processing order; appends kept positions to `kept`.
template <typename scalar_t>
void greedy(const scalar_t* boxes, int64_t count, scalar_t thresh, const int64_t* positions,
            std::vector<int64_t>& kept) {
  std::vector<uint8_t> suppressed(count, 0);
  for (int64_t i = 0; i < count; ++i) {
    if (suppressed[i]) {
      continue;
    }
    kept.push_back(positions[i]);
    const scalar_t* bi = boxes + 4 * i;
    for (int64_t j = i + 1; j < count; ++j) {
      if (!suppressed[j] && iou_plus_one(bi, boxes + 4 * j) > thresh) {
        suppressed[j] = 1;
      }
    }
  }
}

template <typename scalar_t>
std::vector<int64_t> nms_cpu_impl(const at::Tensor& boxes, const at::Tensor& order, const int64_t* labels,
                                  double iou_threshold) {
  const int64_t n = boxes.size(0);
  const scalar_t* b = boxes.data_ptr<scalar_t>();
  const int64_t* ord = order.data_ptr<int64_t>();
  const scalar_t thresh = static_cast<scalar_t>(iou_threshold);
  std::vector<int64_t> kept;
  kept.reserve(n);
  if (labels == nullptr) {
    std::vector<scalar_t> sorted(4 * n);
    for (int64_t k = 0; k < n; ++k) {
      std::copy(b + 4 * ord[k], b + 4 * ord[k] + 4, sorted.begin() + 4 * k);
    }
    greedy(sorted.data(), n, thresh, ord, kept);
    return kept;
  }
  // Bucket the score-ordered indices by label, keeping the order inside each bucket.
  std::unordered_map<int64_t, std::vector<int64_t>> buckets;
  for (int64_t k = 0; k < n; ++k) {
    buckets[labels[ord[k]]].push_back(ord[k]);
  }
  std::vector<scalar_t> sorted;
  for (auto& entry : buckets) {
    const std::vector<int64_t>& idx = entry.second;
    const int64_t count = static_cast<int64_t>(idx.size());
    sorted.resize(4 * count);
    for (int64_t k = 0; k < count; ++k) {
      std::copy(b + 4 * idx[k], b + 4 * idx[k] + 4, sorted.begin() + 4 * k);
    }
    greedy(sorted.data(), count, thresh, idx.data(), kept);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
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
  std::vector<int64_t> kept;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms_cpu", [&] {
    kept = nms_cpu_impl<scalar_t>(boxes, order, labels_ptr, iou_threshold);
  });
  at::Tensor keep = at::empty({static_cast<int64_t>(kept.size())}, boxes.options().dtype(at::kLong));
  std::copy(kept.begin(), kept.end(), keep.data_ptr<int64_t>());
  if (sort_ascending) {
    keep = std::get<0>(keep.sort(0, false));
  }
  return keep;
}

}  // namespace mrcnn
