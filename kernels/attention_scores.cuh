#pragma once
// Attention probabilities accumulated per cache slot, for the cache policies that rank tokens
// by attention (H2O, SnapKV): score[kv_head, j] += the softmax probability that queries
// [first_query, n) of the n newest tokens, over the group's query heads, give slot j, with the
// causal masking of attention.cuh (query i sees slots [0, length - n + i]). With LeanK's middle
// region (kv_cache.h), every query also sees all of the head's middle slots, scored over its
// kept channels, in the same softmax, and their probabilities go to mid_score.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvlab::kernels {

struct AttentionScoreArgs {
  const float* q;          // [n, q_heads * head_dim]
  const __nv_bfloat16* k;  // this layer: [kv_heads, capacity, head_dim]
  const int32_t* length;   // this layer: [kv_heads], on the device
  float* score;            // this layer: [kv_heads, capacity]
  int64_t n;
  int first_query;
  int q_heads, kv_heads, head_dim, capacity;
  float scale;
  // The middle, this layer's (null mid_k: none, or no head keeps a channel): packed rows of
  // kept[h] channels from element k_offset[h], channels[h, j] the key channel of element j.
  const __nv_bfloat16* mid_k;
  const int32_t* mid_length;  // [kv_heads]
  const int32_t* kept;        // [kv_heads]
  const int32_t* channels;    // [kv_heads, head_dim]
  const int32_t* k_offset;    // [kv_heads]
  float* mid_score;           // [kv_heads, mid_capacity]
  int mid_capacity;
};

// Two launches: row statistics (max and sum of each query row's softmax, split over the
// keys), then per-slot sums of exp(s - lse). The split is chosen from shapes and capacities,
// never from the lengths, which stay on the device; so one plan serves a captured graph.
struct AttentionScorePlan {
  int splits = 1;
  size_t workspace_bytes = 0;
};
bool attention_scores_supports(int head_dim);  // a multiple of 8 up to 256
AttentionScorePlan attention_scores_plan(const AttentionScoreArgs& a, int sm_count);
cudaError_t accumulate_attention_scores(const AttentionScoreArgs& a, const AttentionScorePlan& plan, void* workspace,
                                        cudaStream_t stream);

}  // namespace kvlab::kernels
