#pragma once
// Token embedding lookup: rows of a bf16 table widened to fp32.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

// out[i] = table[ids[i]] for i < n. An id outside [0, vocab) leaves its row unwritten and
// records {1, id, vocab} in bad_id[0..2] (host-mapped memory the backend checks at its next
// synchronisation), because the ids live on the device and the host cannot check them first.
cudaError_t embedding(const __nv_bfloat16* table, int64_t vocab, int hidden, const int32_t* ids, int64_t n,
                      float* out, int32_t* bad_id, cudaStream_t stream);

}  // namespace kvlab::kernels
