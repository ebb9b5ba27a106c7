#pragma once
// RMSNorm over rows, where no kernel that reads the rows folds it in (as the decode GEMV and
// rope_kv_append do): the op itself, and prefill's GEMM inputs, normed straight into bf16.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

// out[r] = x[r] / rms(x[r]) * weight, for rows x [rows, cols]. An fp32 out may alias x; a bf16
// one is a prefill GEMM's input, normed and rounded in one pass.
cudaError_t rmsnorm(const float* x, const __nv_bfloat16* weight, float eps, float* out, int64_t rows,
                    int cols, cudaStream_t stream);
cudaError_t rmsnorm(const float* x, const __nv_bfloat16* weight, float eps, __nv_bfloat16* out, int64_t rows,
                    int cols, cudaStream_t stream);

}  // namespace kvlab::kernels
