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
  int32_t* length;           // this layer: [kv_heads], on the device
  float* out;                // [n, q_heads * head_dim]
  int64_t n;
  int q_heads, kv_heads, head_dim, capacity;
  float scale;
  // Tokens already written past length[h] (by the q/k/v GEMV: kernels/matmul.cuh,
  // GemvRopeAppend), attended as kept: decode_attention then adds them to the lengths once every
  // split has read them. Needs a plan with a merge (decode_attention_advances). With pending
  // tokens the kernel launched just before must write neither the lengths nor the keys below
  // them: the tensor-core blocks read those before waiting for it.
  int pending = 0;
  // The prefill kernel only: q and the output in bf16 here instead (q and out then null), as the
  // o projection's GEMM reads them.
  const __nv_bfloat16* q_bf16 = nullptr;
  __nv_bfloat16* out_bf16 = nullptr;
};

// LeanK's middle region of one layer (lib/backend/kv_cache.h: ChannelPrunedKV): older than
// every full-region slot but the sink, so seen by every query; keys hold only the head's kept
// channels (a multiple of 32), and a head that keeps none has no middle.
struct PrunedKeys {
  const __nv_bfloat16* k;   // packed: head h's rows of kept[h] channels from k_offset[h]
  const __nv_bfloat16* v;   // [heads with kept > 0, capacity, head_dim]; head h's block v_row[h]
  const int32_t* length;    // this layer: [kv_heads]
  const int32_t* kept;      // [kv_heads]
  const int32_t* channels;  // [kv_heads, head_dim]: kept channel indices, ascending
  const int32_t* k_offset;  // [kv_heads]
  const int32_t* v_row;     // [kv_heads]; -1 when kept = 0
  int capacity;
  const int32_t* host_kept = nullptr;  // [kv_heads] on the host, for planning
};

// The middle's blocks of one launch: KV head h takes blocks [first[h], first[h + 1]), as many as
// its share of the bytes the whole launch reads (heads that keep no channel take none).
constexpr int kMaxPrunedHeads = 64;
struct MiddleBlocks {
  int first[kMaxPrunedHeads + 1] = {};
  int most = 0;  // the most one head takes
};

bool decode_attention_supports(int head_dim);
bool decode_attention_supports_pruned(int head_dim, int kv_heads);  // head_dim 64, 128; kMaxPrunedHeads
bool prefill_attention_supports(int head_dim);

// How decode_attention splits the keys, chosen on the host from shapes alone (never from the
// lengths, which stay on the device), so one plan serves every step of a captured graph.
// With a middle region, its blocks come after the full region's and one merge takes both.
struct DecodePlan {
  int splits = 1;       // per KV head, over the full region
  MiddleBlocks middle;  // with a middle region
  size_t workspace_bytes = 0;  // partial results to merge; 0 when there is a single split
};
DecodePlan decode_attention_plan(const AttentionArgs& a, int sm_count, const PrunedKeys* pruned = nullptr);
// Whether decode_attention can take pending tokens under this plan: it has a merge, which
// advances the lengths after every split has read them.
bool decode_attention_advances(const DecodePlan& plan);
cudaError_t decode_attention(const AttentionArgs& a, const DecodePlan& plan, void* workspace, cudaStream_t stream,
                             const PrunedKeys* pruned = nullptr);

cudaError_t prefill_attention(const AttentionArgs& a, cudaStream_t stream);

}  // namespace kvlab::kernels
