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

  int32_t max_length() const;  // over all (layer, head), from host_length

  size_t bytes() const;      // K + V + bookkeeping, as allocated
};

}  // namespace kvlab
