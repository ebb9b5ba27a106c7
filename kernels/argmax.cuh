#pragma once
// Index of each row's maximum.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvlab::kernels {

// logits [rows, cols] fp32 (cols < 2^31, rows ≤ 65535); out I32 [rows]: the first index of the
// maximum on ties. Two launches: blocks over spans of each row (a 128K vocabulary over ~64 SMs,
// where one block a row took 19 µs of a decode step), then one warp a row over their bests,
// kept in `workspace` (argmax_workspace_bytes).
size_t argmax_workspace_bytes(int64_t rows, int64_t cols);
cudaError_t argmax(const float* logits, int64_t rows, int64_t cols, int32_t* out, void* workspace,
                   cudaStream_t stream);

}  // namespace kvlab::kernels
