#pragma once
// Compaction of one layer of the bf16 KV cache after a cache policy chose what stays: per KV
// head, slots keep[h, 0..count[h]) move to the front in order with their positions and scores
// (scores past count become 0), and length[h] becomes count[h]. With inv_freq, each moved key
// is re-rotated by (new slot - old slot, plus shift) * inv_freq (pairs j, j + width/2 of its
// row; fp32 math, bf16 storage), for policies whose keys sit rotated at their index in the
// cache. The region is the full one ([kv_heads, capacity, head_dim] K and V) or, with the
// per-head layout fields set, LeanK's middle (kv_cache.h: ChannelPrunedKV).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvlab::kernels {

struct KvCompactArgs {
  __nv_bfloat16* k;       // this layer: [kv_heads, capacity, head_dim]
  __nv_bfloat16* v;       // this layer: [kv_heads, capacity, head_dim]
  int32_t* position;      // this layer: [kv_heads, capacity]
  float* score;           // this layer: [kv_heads, capacity], or null when no policy scores
  int32_t* length;        // this layer: [kv_heads]; read, then set to count
  const int32_t* keep;    // head h's row at h * keep_stride: strictly ascending source slots below length
  const int32_t* count;   // [kv_heads], each at most keep_width
  const float* inv_freq;  // [head_dim / 2] to re-rotate moved keys, or null
  const int32_t* shift;   // [kv_heads, 2] (from, extra): keys moved to slots >= from turn extra more; or null
  // The middle's layout, per head (all null for the full region): K rows of width[h] channels
  // from element k_offset[h], channels[h, j] the key channel of row element j (for inv_freq),
  // V block v_row[h] (-1: none).
  const int32_t* width;
  const int32_t* k_offset;
  const int32_t* channels;
  const int32_t* v_row;
  // Set to 1 when a keep list breaks its contract (a bad row is left where it was), as
  // host-mapped memory, because keep lists live on the device.
  int32_t* error;
  int kv_heads, head_dim, capacity;
  int keep_width;   // entries per keep row
  int keep_stride;  // keep_width, or 0 when every head reads the same row
};

// The launches move the kept slots in passes of `rows_per_pass` destination slots per head,
// through a scratch buffer of that many rows, so the scratch stays bounded at any capacity.
struct KvCompactPlan {
  int rows_per_pass = 0;
  int passes = 0;
  size_t workspace_bytes = 0;
};
bool kv_compact_supports(int head_dim);  // even head_dim
KvCompactPlan kv_compact_plan(int kv_heads, int head_dim, int capacity, size_t max_workspace_bytes);
cudaError_t kv_compact(const KvCompactArgs& a, const KvCompactPlan& plan, void* workspace, cudaStream_t stream);

}  // namespace kvlab::kernels
