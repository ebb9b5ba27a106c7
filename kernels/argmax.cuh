#pragma once
// Index of each row's maximum.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

// logits [rows, cols] fp32; out I32 [rows]: the first index of the maximum on ties.
cudaError_t argmax(const float* logits, int64_t rows, int64_t cols, int32_t* out, cudaStream_t stream);

}  // namespace kvlab::kernels
