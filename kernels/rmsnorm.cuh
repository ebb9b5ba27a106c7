#pragma once
// RMSNorm over rows, optionally fused with the residual add that precedes it.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

// out[r] = x[r] / rms(x[r]) * weight, for rows x [rows, cols]. out may alias x.
cudaError_t rmsnorm(const float* x, const __nv_bfloat16* weight, float eps, float* out, int64_t rows,
                    int cols, cudaStream_t stream);

// residual[r] += x[r]; out[r] = rmsnorm(residual[r]).
cudaError_t add_rmsnorm(float* residual, const float* x, const __nv_bfloat16* weight, float eps, float* out,
                        int64_t rows, int cols, cudaStream_t stream);

}  // namespace kvlab::kernels
