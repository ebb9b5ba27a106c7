#include "argmax.cuh"

#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

struct Best {
  float value;
  int64_t index;
};

// Larger value wins; on equal values the lower index, so ties resolve as the CPU's scan does.
__device__ __forceinline__ Best better(Best a, Best b) {
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

constexpr int kThreads = 1024;

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* __restrict__ logits, int64_t cols,
                                                          int32_t* __restrict__ out) {
  enter_dependent_part();
  const float* row = logits + blockIdx.x * cols;
  Best best{-INFINITY, cols};
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) best = better(best, Best{row[c], c});
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Best other{__shfl_xor_sync(kFullMask, best.value, o), __shfl_xor_sync(kFullMask, best.index, o)};
    best = better(best, other);
  }
  __shared__ Best warp_best[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_best[warp] = best;
  __syncthreads();
  if (warp == 0) {
    best = warp_best[lane];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      Best other{__shfl_xor_sync(kFullMask, best.value, o), __shfl_xor_sync(kFullMask, best.index, o)};
      best = better(best, other);
    }
    // Only a row of NaN has no winner; report 0 rather than an index past the row.
    if (lane == 0) out[blockIdx.x] = int32_t(best.index < cols ? best.index : 0);
  }
}

}  // namespace

cudaError_t argmax(const float* logits, int64_t rows, int64_t cols, int32_t* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  return launch(argmax_kernel, unsigned(rows), kThreads, 0, stream, logits, cols, out);
}

}  // namespace kvlab::kernels
