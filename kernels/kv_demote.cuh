#pragma once
// LeanK demotion on one layer of the bf16 KV cache: per KV head, full-region slots
// [front[h], front[h] + count[h]) are copied to the end of the head's middle region (kv_cache.h:
// ChannelPrunedKV): K gathered to the head's kept channels, V whole when it keeps any, with
// their positions (and scores); then the middle's length grows by count[h]. The full region is left as it
// is (the caller compacts it).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

struct KvDemoteArgs {
  const __nv_bfloat16* k;        // this layer's full region: [kv_heads, capacity, head_dim]
  const __nv_bfloat16* v;
  const int32_t* position;       // [kv_heads, capacity]
  const float* score;            // [kv_heads, capacity], or null when the cache keeps no scores
  __nv_bfloat16* mid_k;          // packed rows of kept[h] channels from k_offset[h]
  __nv_bfloat16* mid_v;          // [heads with kept > 0, mid_capacity, head_dim]
  int32_t* mid_position;         // [kv_heads, mid_capacity]
  float* mid_score;              // [kv_heads, mid_capacity], null with score
  int32_t* mid_length;           // [kv_heads]: read, then advanced by count
  const int32_t* kept;           // [kv_heads]
  const int32_t* channels;       // [kv_heads, head_dim]
  const int32_t* k_offset;       // [kv_heads]
  const int32_t* v_row;          // [kv_heads]
  const int32_t* count;          // [kv_heads]
  const int32_t* front;          // [kv_heads]: full-region slots older than the middle
  int kv_heads, head_dim, capacity, mid_capacity;
};

cudaError_t kv_demote(const KvDemoteArgs& a, cudaStream_t stream);

}  // namespace kvlab::kernels
