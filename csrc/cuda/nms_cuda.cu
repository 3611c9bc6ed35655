// Greedy NMS on the GPU with the "+1" area convention, optionally class-aware.
//
// Boxes are sorted by decreasing score (stable sort); a kernel fills, for every box i, a bitmask of the later
// boxes that it suppresses (64 boxes per word); the host then walks the boxes in order, as in the CPU kernel.
#include <ATen/ceil_div.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

#include "../ops.h"

namespace mrcnn {

namespace {

constexpr int kThreadsPerBlock = 64;  // one bit per box in a 64-bit word

template <typename T>
__global__ void nms_mask_kernel(int64_t n, T iou_threshold, const T* boxes, const int64_t* labels,
                                uint64_t* mask) {
  const int row_block = blockIdx.y;
  const int col_block = blockIdx.x;
  if (row_block > col_block) {
    return;  // boxes only suppress later (lower-scored) boxes
  }
  const int64_t row_left = n - static_cast<int64_t>(row_block) * kThreadsPerBlock;
  const int64_t col_left = n - static_cast<int64_t>(col_block) * kThreadsPerBlock;
  const int row_size = row_left < kThreadsPerBlock ? static_cast<int>(row_left) : kThreadsPerBlock;
  const int col_size = col_left < kThreadsPerBlock ? static_cast<int>(col_left) : kThreadsPerBlock;
  __shared__ T block_boxes[kThreadsPerBlock * 4];
  __shared__ int64_t block_labels[kThreadsPerBlock];
  if (threadIdx.x < col_size) {
    const int64_t src = static_cast<int64_t>(col_block) * kThreadsPerBlock + threadIdx.x;
#pragma unroll
    for (int d = 0; d < 4; ++d) {
      block_boxes[threadIdx.x * 4 + d] = boxes[src * 4 + d];
    }
    block_labels[threadIdx.x] = labels != nullptr ? labels[src] : 0;
  }
  __syncthreads();
  if (threadIdx.x < row_size) {
    const int64_t cur = static_cast<int64_t>(row_block) * kThreadsPerBlock + threadIdx.x;
    const T* cur_box = boxes + cur * 4;
    const int64_t cur_label = labels != nullptr ? labels[cur] : 0;
    uint64_t bits = 0;
    const int start = (row_block == col_block) ? threadIdx.x + 1 : 0;
    for (int i = start; i < col_size; ++i) {
      if (block_labels[i] == cur_label && iou_plus_one(cur_box, block_boxes + i * 4) > iou_threshold) {
        bits |= 1ULL << i;
      }
    }
    const int64_t col_blocks = at::ceil_div(n, static_cast<int64_t>(kThreadsPerBlock));
    mask[cur * col_blocks + col_block] = bits;
  }
}

}  // namespace

at::Tensor nms_cuda(const at::Tensor& boxes_in, const at::Tensor& scores, const std::optional<at::Tensor>& labels_in,
                    double iou_threshold, bool sort_ascending) {
  const c10::cuda::CUDAGuard device_guard(boxes_in.device());
  const int64_t n = boxes_in.size(0);
  if (n == 0) {
    return at::empty({0}, boxes_in.options().dtype(at::kLong));
  }
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor boxes_sorted = boxes_in.index_select(0, order).contiguous();
  at::Tensor labels_sorted;
  if (labels_in.has_value()) {
    labels_sorted = labels_in->to(at::kLong).index_select(0, order).contiguous();
  }
  const int64_t col_blocks = at::ceil_div(n, static_cast<int64_t>(kThreadsPerBlock));
  at::Tensor mask = at::empty({n * col_blocks}, boxes_in.options().dtype(at::kLong));
  const dim3 blocks(col_blocks, col_blocks);
  const dim3 threads(kThreadsPerBlock);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(boxes_sorted.scalar_type(), "nms_cuda", [&] {
    nms_mask_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        n, static_cast<scalar_t>(iou_threshold), boxes_sorted.data_ptr<scalar_t>(),
        labels_in.has_value() ? labels_sorted.data_ptr<int64_t>() : nullptr,
        reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  const at::Tensor mask_cpu = mask.to(at::kCPU);
  const uint64_t* mask_host = reinterpret_cast<const uint64_t*>(mask_cpu.data_ptr<int64_t>());
  std::vector<uint64_t> removed(col_blocks, 0);
  at::Tensor keep = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  int64_t* keep_ptr = keep.data_ptr<int64_t>();
  int64_t num_keep = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / kThreadsPerBlock;
    const int64_t bit = i % kThreadsPerBlock;
    if (removed[block] & (1ULL << bit)) {
      continue;
    }
    keep_ptr[num_keep++] = i;
    const uint64_t* row = mask_host + i * col_blocks;
    for (int64_t j = block; j < col_blocks; ++j) {
      removed[j] |= row[j];
    }
  }
  const at::Tensor keep_sorted_pos = keep.narrow(0, 0, num_keep).to(order.device());
  at::Tensor result = order.index_select(0, keep_sorted_pos);
  if (sort_ascending) {
    result = std::get<0>(result.sort(0, false));
  }
  return result;
}

}  // namespace mrcnn
