#pragma once
// Causal GQA attention of the n newest tokens over one layer of the bf16 KV cache.
// Query i of the n sees cache slots [0, length[kv_head] - n + i]; query head h reads KV head
// h / (q_heads / kv_heads). Two launchers share this contract:
//   decode_attention  (decode_attention.cu)  — split-K over the keys (flash-decoding) for one or
//       a few queries: tensor cores at head_dim 64/128, CUDA cores at any other multiple of 8 up
//       to 256; correct for any n, so also the fallback for head_dims the prefill kernel lacks;
//   prefill_attention (prefill_attention.cu) — flash attention on tensor cores for many
//       queries, head_dim 64/128.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvlab::kernels {

struct AttentionArgs {
  const float* q;            // [n, q_heads * head_dim]
  const __nv_bfloat16* k;    // this layer: [kv_heads, capacity, head_dim]
  const __nv_bfloat16* v;    // this layer: [kv_heads, capacity, head_dim]
  const int32_t* length;     // this layer: [kv_heads], on the device
  float* out;                // [n, q_heads * head_dim]
  int64_t n;
  int q_heads, kv_heads, head_dim, capacity;
  float scale;
};

bool decode_attention_supports(int head_dim);
bool prefill_attention_supports(int head_dim);

// How decode_attention splits the keys, chosen on the host from shapes alone (never from the
// lengths, which stay on the device), so one plan serves every step of a captured graph.
struct DecodePlan {
  int splits = 1;
  size_t workspace_bytes = 0;  // partial results to merge; 0 when splits == 1
};
DecodePlan decode_attention_plan(const AttentionArgs& a, int sm_count);
cudaError_t decode_attention(const AttentionArgs& a, const DecodePlan& plan, void* workspace, cudaStream_t stream);

cudaError_t prefill_attention(const AttentionArgs& a, cudaStream_t stream);

}  // namespace kvlab::kernels
