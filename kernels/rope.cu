#include "rope.cuh"

#include "device_common.cuh"
#include "launch.cuh"
#include "rotary.cuh"

namespace kvlab::kernels {
namespace {

// One thread per rotated pair (channel j with j + head_dim/2).
__global__ void rope_kernel(float* x, const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                            float attention_scaling, int64_t pairs, int heads, int half) {
  enter_dependent_part();
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < pairs;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int j = int(idx % half);
    const int64_t token_head = idx / half;
    float* head = x + token_head * (2 * half);
    rotate_pair(head, head, j, half, positions[token_head / heads], inv_freq[j], attention_scaling);
  }
}

}  // namespace

cudaError_t rope(float* x, const int32_t* positions, const float* inv_freq, float attention_scaling, int64_t n,
                 int heads, int head_dim, cudaStream_t stream) {
  const int half = head_dim / 2;
  const int64_t pairs = n * heads * half;
  if (pairs == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = (pairs + threads - 1) / threads;
  return launch(rope_kernel, unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream, x, positions, inv_freq,
                attention_scaling, pairs, heads, half);
}

}  // namespace kvlab::kernels
