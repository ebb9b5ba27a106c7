#pragma once
// One row's RMSNorm by a whole block: the rmsnorm kernel's body, and the head norms that
// rope_kv_append runs before its rotation. Device code: include from kernels/*.cu only.
#include <cuda_bf16.h>

#include "device_common.cuh"
#include "elementwise.cuh"

namespace kvlab::kernels {

// out = x / rms(x) * weight over cols elements, stored as Out (fp32 or bf16). Every element is
// read and written by the same thread and the block sum's barrier sits between the passes, so an
// fp32 out may alias x. Every thread of the block must call it.
template <typename Out>
__device__ __forceinline__ void rmsnorm_row(const float* x, const __nv_bfloat16* __restrict__ weight, float eps,
                                            Out* out, int cols) {
  float sum_sq = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) sum_sq += x[c] * x[c];
  const float inv = 1.0f / sqrtf(block_sum(sum_sq) / float(cols) + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v[1] = {x[c] * inv * bf16_to_float(weight[c])};
    store<1>(out + c, v);
  }
}

}  // namespace kvlab::kernels
