#include "rmsnorm.cuh"

#include <algorithm>

#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

// One block per row. Pass one sums the squares; pass two re-reads the row and scales it.
// Every element is read and written by the same thread and the block sum's barrier sits
// between the passes, so out may alias x.
__global__ void rmsnorm_kernel(const float* x, const __nv_bfloat16* __restrict__ weight, float eps, float* out,
                               int cols) {
  enter_dependent_part();
  const float* src = x + int64_t(blockIdx.x) * cols;
  float sum_sq = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) sum_sq += src[c] * src[c];
  const float inv = 1.0f / sqrtf(block_sum(sum_sq) / float(cols) + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    out[int64_t(blockIdx.x) * cols + c] = src[c] * inv * bf16_to_float(weight[c]);
}

int threads_for(int cols) { return std::min(1024, std::max(32, (cols / 4 + 31) / 32 * 32)); }

}  // namespace

cudaError_t rmsnorm(const float* x, const __nv_bfloat16* weight, float eps, float* out, int64_t rows, int cols,
                    cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  return launch(rmsnorm_kernel, unsigned(rows), threads_for(cols), 0, stream, x, weight, eps, out, cols);
}

}  // namespace kvlab::kernels
