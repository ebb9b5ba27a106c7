#pragma once
// Setting up LeanK's middle region on a KV cache (kv_cache.h: ChannelPrunedKV), the scores of
// both regions, and resizing the full region once the prompt's middle has moved out of it; all
// through the Backend interface only, so every backend gets them.
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace kvlab {

// Allocates the middle region: `keep` is the 0/1 mask [layers, kv_heads, head_dim]; every
// (layer, head) gets `capacity` slots of its kept channels (V only where it keeps any); the
// first `sink` full-region slots are never demoted (ChannelPrunedKV::front).
void attach_pruned_region(Backend& b, KVCache& cache, const std::vector<int32_t>& keep, int capacity, int sink);

// Zeroed attention scores (KVCache::score) for both regions, for the cache policies that rank
// tokens by attention; the middle, if any, must be attached first.
void attach_scores(Backend& b, KVCache& cache);

// Gives the full region (the whole store when there is no middle) `capacity` slots (>= every
// head's length), keeping each head's slots, positions and scores; the old tensors are freed
// when the last handle goes.
void resize_full_region(Backend& b, KVCache& cache, int capacity);

}  // namespace kvlab
