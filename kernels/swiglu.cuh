#pragma once
// SwiGLU activation: out = silu(gate) * up, elementwise.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

cudaError_t swiglu(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream);

}  // namespace kvlab::kernels
