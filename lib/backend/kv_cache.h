#pragma once
// The KV store's layout, shared by every backend and every cache policy.
//
// Per layer and per KV head the cache holds a variable number of kept token slots
// (length[layer, head] <= capacity); each slot carries the original position of its token.
// Keys are stored after RoPE. New tokens are always appended after the kept slots, so
// "causal" inside the store means: query i of a block of n new tokens sees slots
// [0, length - n + i]. Policies change which older slots stay; they never reorder the tail.
#include <vector>

#include "backend/tensor.h"

namespace kvlab {

// LeanK's middle region (docs/leank.md, "The inference layout"): tokens between the sink and
// the recent window keep only the K channels of a static per-(layer, head) mask, packed; heads
// that keep no channel hold no middle K or V at all. Tokens enter it by Backend::kv_demote and
// are never appended to directly. In age order a head holds full-region slots [0, front), then
// its middle, then full-region slots [front, length): front starts at the sink and only drops,
// when a cache policy evicts some of those oldest slots.
struct ChannelPrunedKV {
  int capacity = 0;        // slots per (layer, head); 0: no middle region
  std::vector<Tensor> k;   // per layer: head h's rows of kept[l, h] channels, from k_offset[l, h]
  std::vector<Tensor> v;   // per layer: [heads with kept > 0, capacity, head_dim]; empty if none
  Tensor length;           // I32 [layers, kv_heads]
  Tensor position;         // I32 [layers, kv_heads, capacity]: original positions
  Tensor kept;             // I32 [layers, kv_heads]: 0..head_dim (CUDA: a multiple of 32)
  Tensor channels;         // I32 [layers, kv_heads, head_dim]: kept channel indices ascending, then 0
  Tensor k_offset;         // I32 [layers, kv_heads]: element offset of the head's block in k[layer]
  Tensor v_row;            // I32 [layers, kv_heads]: the head's block in v[layer], -1 when kept = 0
  Tensor front;            // I32 [layers, kv_heads]: full-region slots older than the middle
  Tensor score;            // F32 [layers, kv_heads, capacity]: as KVCache::score, when it is there
  std::vector<int32_t> host_kept, host_length, host_front;  // host mirrors, as KVCache::host_length

  bool empty() const { return capacity == 0; }
  size_t k_bytes() const;
  size_t v_bytes() const;
};

struct KVCache {
  int layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int capacity = 0;          // slots per (layer, head)
  std::vector<Tensor> k;     // per layer: [kv_heads, capacity, head_dim]
  std::vector<Tensor> v;     // per layer: [kv_heads, capacity, head_dim]
  Tensor length;             // I32 [layers, kv_heads]: kept slots per (layer, head)
  Tensor position;           // I32 [layers, kv_heads, capacity]: original position of each slot
  Tensor score;              // F32 [layers, kv_heads, capacity]: accumulated attention, only when a
                             // cache policy asks for it (empty otherwise)
  // Host mirror of `length`, kept by whoever appends or compacts, so the host never has to
  // read the device to know how full the cache is.
  std::vector<int32_t> host_length;

  ChannelPrunedKV pruned;     // LeanK's middle region, empty unless a channel mask is attached

  int32_t max_length() const;  // over all (layer, head), from host_length

  size_t bytes() const;      // K + V + bookkeeping of both regions, as allocated
  size_t k_bytes() const;    // K of both regions
  size_t v_bytes() const;
};

}  // namespace kvlab
