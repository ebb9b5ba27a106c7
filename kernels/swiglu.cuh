#pragma once
// SwiGLU activation: out = silu(gate) * up, elementwise, computed in fp32. The bf16 forms serve
// prefill, whose gate and up GEMMs write bf16 and whose down GEMM reads it.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

cudaError_t swiglu(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream);
cudaError_t swiglu(const __nv_bfloat16* gate, const __nv_bfloat16* up, float* out, int64_t count,
                   cudaStream_t stream);
cudaError_t swiglu(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* out, int64_t count,
                   cudaStream_t stream);

}  // namespace kvlab::kernels
