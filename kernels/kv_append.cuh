#pragma once
// Appends new tokens' keys and values (fp32 activations) to one layer of a bf16 KV cache.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

struct KvAppendArgs {
  const float* k;             // [n, kv_heads * head_dim]
  const float* v;             // [n, kv_heads * head_dim]
  const int32_t* positions;   // [n]
  __nv_bfloat16* cache_k;     // this layer: [kv_heads, capacity, head_dim]
  __nv_bfloat16* cache_v;
  int32_t* cache_position;    // this layer: [kv_heads, capacity]
  int32_t* length;            // this layer: [kv_heads], read and advanced by n on the device
  int64_t n;
  int kv_heads, head_dim, capacity;
};

// Writes token i of head h to slot length[h] + i and then adds n to length[h], all on the
// stream, so decode never waits for the host.
cudaError_t kv_append(const KvAppendArgs& a, cudaStream_t stream);

}  // namespace kvlab::kernels
