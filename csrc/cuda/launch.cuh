// Launch helpers shared by the CUDA kernels of maskrcnn_benchmark._C: the block size, the grid size for n
// elements (capped; the grid-stride loop covers the rest) and the grid-stride loop itself.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mrcnn {

constexpr int kThreads = 256;

inline int num_blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535 * 8));
}

}  // namespace mrcnn

#define MRCNN_KERNEL_LOOP(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
