#pragma once
// Appends new tokens' keys and values (fp32 activations) to one layer of a bf16 KV cache.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

struct KvAppendArgs {
  // Token i's keys (values) at k + i * stride (v + i * stride), kv_heads * head_dim of them:
  // stride is a row of them, or of a stacked q/k/v projection's output.
  const float* k;
  const float* v;
  int64_t stride;
  // Instead of k and v (then null), for rope_kv_append without head norms: bf16 keys and values
  // (a prefill GEMM's output, rounded there as HF's bf16 projections round it).
  const __nv_bfloat16* k_bf16 = nullptr;
  const __nv_bfloat16* v_bf16 = nullptr;
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

// Up to this many tokens (a decode step's) rope_kv_append runs as one launch, above it as two.
constexpr int kRopeAppendMaxTokens = 8;

// RoPE of the new tokens' queries and keys, as kernels/rope.cuh does it, into q_out and k_out
// ([n, heads * head_dim] rows; each may be its input itself when that is such rows).
struct RopeArgs {
  const float* q = nullptr;  // token i's query heads at q + i * q_stride
  const __nv_bfloat16* q_bf16 = nullptr;  // instead of q, with a.k_bf16
  int64_t q_stride = 0;
  float* q_out = nullptr;
  // Instead of q_out, without head norms: q rounded to bf16, as the prefill attention reads it.
  __nv_bfloat16* q_out_bf16 = nullptr;
  float* k_out = nullptr;    // the rotated a.k, which the cache also stores; null: into the cache only
  int q_heads = 0;
  const int32_t* positions = nullptr;  // [n], the positions to rotate by
  const float* inv_freq = nullptr;     // [head_dim / 2]; null: no rotation (kv_append)
  float attention_scaling = 1.0f;
  // Qwen3's RMSNorm of every q and k head before the rotation, as kernels/rmsnorm_row.cuh does it
  // ([head_dim] weights); null: none.
  const __nv_bfloat16* q_norm = nullptr;
  const __nv_bfloat16* k_norm = nullptr;
  float norm_eps = 0.0f;
};

// The q and k head norms (when given), rope on q and k, then kv_append: the steps between a
// layer's projections and its attention, in one pass over q, k and v. Results as the separate
// ops give them.
cudaError_t rope_kv_append(const KvAppendArgs& a, const RopeArgs& r, cudaStream_t stream);

}  // namespace kvlab::kernels
