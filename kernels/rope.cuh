#pragma once
// Rotary position embedding, in place, HF's rotate_half convention.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

// x [n, heads * head_dim]; positions I32 [n]; inv_freq F32 [head_dim / 2].
cudaError_t rope(float* x, const int32_t* positions, const float* inv_freq, float attention_scaling, int64_t n,
                 int heads, int head_dim, cudaStream_t stream);

}  // namespace kvlab::kernels
