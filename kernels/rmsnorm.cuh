#pragma once
// RMSNorm over rows, where it is not folded into the matmul that reads it (kernels/matmul.cuh):
// prefill, and Qwen3's per-head q and k norms there (a decode step norms them in rope_kv_append).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

// out[r] = x[r] / rms(x[r]) * weight, for rows x [rows, cols]. out may alias x.
cudaError_t rmsnorm(const float* x, const __nv_bfloat16* weight, float eps, float* out, int64_t rows,
                    int cols, cudaStream_t stream);

}  // namespace kvlab::kernels
