#include "argmax.cuh"

#include <algorithm>

#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

struct Best {
  float value;
  int32_t index;
};

// Larger value wins; on equal values the lower index, so ties resolve as the CPU's scan does.
__device__ __forceinline__ Best better(Best a, Best b) {
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

__device__ __forceinline__ Best warp_best(Best best) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    best = better(best, Best{__shfl_xor_sync(kFullMask, best.value, o), __shfl_xor_sync(kFullMask, best.index, o)});
  return best;
}

constexpr int kThreads = 256;
constexpr int kColsPerBlock = 2048;  // a 128K vocabulary spreads over ~64 SMs
constexpr int kMaxBlocks = 128;

int blocks_per_row(int64_t cols) {
  return int(std::min<int64_t>(kMaxBlocks, std::max<int64_t>(1, (cols + kColsPerBlock - 1) / kColsPerBlock)));
}

// Grid (blocks, rows): block b of a row finds the best of its span of columns. A span with no
// winner (all NaN) reports index cols.
__global__ void __launch_bounds__(kThreads) argmax_span_kernel(const float* __restrict__ logits, int64_t cols,
                                                               Best* __restrict__ partial) {
  enter_dependent_part();
  const int64_t span = (cols + gridDim.x - 1) / gridDim.x;
  const int64_t begin = blockIdx.x * span, end = min(cols, begin + span);
  const float* row = logits + blockIdx.y * cols;
  Best best{-INFINITY, int32_t(cols)};
  for (int64_t c = begin + threadIdx.x; c < end; c += kThreads) best = better(best, Best{row[c], int32_t(c)});
  best = warp_best(best);
  __shared__ Best per_warp[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) per_warp[warp] = best;
  __syncthreads();
  if (warp != 0) return;
  best = warp_best(lane < kThreads / 32 ? per_warp[lane] : Best{-INFINITY, int32_t(cols)});
  if (lane == 0) partial[blockIdx.y * gridDim.x + blockIdx.x] = best;
}

// A warp per row: the best of its blocks' bests.
__global__ void argmax_merge_kernel(const Best* __restrict__ partial, int blocks, int64_t cols,
                                    int32_t* __restrict__ out) {
  enter_dependent_part();
  const int lane = threadIdx.x;
  Best best{-INFINITY, int32_t(cols)};
  for (int b = lane; b < blocks; b += 32) best = better(best, partial[blockIdx.x * blocks + b]);
  best = warp_best(best);
  // Only a row of NaN has no winner; report 0 rather than an index past the row.
  if (lane == 0) out[blockIdx.x] = best.index < cols ? best.index : 0;
}

}  // namespace

size_t argmax_workspace_bytes(int64_t rows, int64_t cols) {
  return size_t(rows) * size_t(blocks_per_row(cols)) * sizeof(Best);
}

cudaError_t argmax(const float* logits, int64_t rows, int64_t cols, int32_t* out, void* workspace,
                   cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (cols <= 0 || cols > INT32_MAX || rows > 65535) return cudaErrorInvalidValue;
  const int blocks = blocks_per_row(cols);
  Best* partial = static_cast<Best*>(workspace);
  cudaError_t err = launch(argmax_span_kernel, dim3(unsigned(blocks), unsigned(rows)), kThreads, 0, stream, logits,
                           cols, partial);
  if (err != cudaSuccess) return err;
  return launch(argmax_merge_kernel, unsigned(rows), 32, 0, stream, static_cast<const Best*>(partial), blocks, cols,
                out);
}

}  // namespace kvlab::kernels
