#include "leank/demotion.h"

#include <algorithm>

#include "backend/pruned_region.h"
#include "core/error.h"
#include "leank/mask.h"
#include "model/memory_plan.h"

namespace kvlab {

void LeanKWindow::validate() const {
  if (sink < 0 || recent < 0 || accumulate < 1)
    fail("LeanK window: sink and recent must be >= 0 and accumulate >= 1 (got sink " + std::to_string(sink) +
         ", recent " + std::to_string(recent) + ", accumulate " + std::to_string(accumulate) + ")");
}

void attach_channel_mask(Backend& b, KVCache& cache, const ChannelMask& mask, const LeanKWindow& window,
                         int middle_capacity) {
  window.validate();
  KVLAB_ASSERT(mask.model.layers == cache.layers && mask.model.kv_heads == cache.kv_heads &&
               mask.model.head_dim == cache.head_dim);
  if (b.device() == Device::CUDA) {
    // The CUDA kernel is specialised on kept counts that are whole 32-channel (64-byte) rows.
    for (size_t i = 0; i < mask.kept.size(); i++)
      if (mask.kept[i] % 32 != 0)
        fail("LeanK mask: the CUDA backend needs kept channel counts that are multiples of 32; layer " +
             std::to_string(i / size_t(cache.kv_heads)) + " head " + std::to_string(i % size_t(cache.kv_heads)) +
             " keeps " + std::to_string(mask.kept[i]) + " (make the mask with --alignment 32)");
  }
  attach_pruned_region(b, cache, mask.keep, middle_capacity, window.sink);
}

void plan_leank(MemoryPlan& plan, const ChannelMask& mask, const LeanKWindow& window) {
  const int hd = mask.model.head_dim;
  const size_t element = plan.k_bytes_per_token_layer / size_t(mask.model.kv_heads * hd);
  size_t per_token = 0;  // middle K + V over all layers and heads
  for (int32_t kept : mask.kept) per_token += size_t(kept) + (kept > 0 ? size_t(hd) : 0);
  per_token *= element;
  const size_t middle_tokens = size_t(window.middle_capacity(plan.context, false));
  plan.leank_middle_bytes = per_token * middle_tokens;
  const size_t full_per_token = (plan.k_bytes_per_token_layer + plan.v_bytes_per_token_layer) * size_t(mask.model.layers);
  plan.leank_kv_bytes_after_prompt =
      plan.leank_middle_bytes + full_per_token * size_t(std::min(plan.context, window.full_capacity()));
}

bool Demoter::demote(KVCache& cache, bool after_prompt) {
  ChannelPrunedKV& mid = cache.pruned;
  KVLAB_ASSERT(!mid.empty());
  const int layers = cache.layers, heads = cache.kv_heads, cap = cache.capacity;
  std::vector<int32_t> count(size_t(layers * heads), 0);
  bool any = false;
  for (size_t lh = 0; lh < count.size(); lh++) {
    // What stays at every channel: the slots older than the middle (the sink, less what a
    // cache policy evicted) and the recent window.
    const int len = cache.host_length[lh], keep_full = mid.host_front[lh] + window_.recent;
    if (after_prompt ? len > keep_full : len >= window_.full_capacity()) {
      count[lh] = len - keep_full;
      any = true;
    }
  }
  if (!any) return false;
  if (keep_.empty() || keep_.dim(2) != cap) {
    count_ = b_.alloc({layers, heads}, DType::I32);
    keep_count_ = b_.alloc({layers, heads}, DType::I32);
    keep_ = b_.alloc({layers, heads, cap}, DType::I32);
  }
  // The full region keeps its front and everything after the demoted slots.
  std::vector<int32_t> keep(size_t(keep_.numel()), 0), keep_count(count.size());
  for (size_t lh = 0; lh < count.size(); lh++) {
    const int len = cache.host_length[lh], front = mid.host_front[lh];
    int32_t* row = keep.data() + lh * size_t(cap);
    int n = 0;
    for (int s = 0; s < len; s++)
      if (s < front || s >= front + count[lh]) row[n++] = s;
    keep_count[lh] = n;
    if (mid.host_length[lh] + count[lh] > mid.capacity)
      fail("LeanK middle region overflow: " + std::to_string(mid.host_length[lh]) + " + " +
               std::to_string(count[lh]) + " tokens exceed its capacity of " + std::to_string(mid.capacity),
           kExitInternal);
  }
  b_.write(count_, count.data(), count.size() * sizeof(int32_t));
  b_.write(keep_count_, keep_count.data(), keep_count.size() * sizeof(int32_t));
  b_.write(keep_, keep.data(), keep.size() * sizeof(int32_t));
  for (int l = 0; l < layers; l++) {
    if (std::all_of(count.begin() + l * heads, count.begin() + (l + 1) * heads, [](int32_t c) { return c == 0; }))
      continue;
    b_.kv_demote(cache, l, count_.slice(l, 1).reshape({heads}));
    b_.kv_compact(cache, l, keep_.slice(l, 1).reshape({heads, cap}), keep_count_.slice(l, 1).reshape({heads}));
  }
  for (size_t lh = 0; lh < count.size(); lh++) {
    cache.host_length[lh] -= count[lh];
    mid.host_length[lh] += count[lh];
  }
  return true;
}

}  // namespace kvlab
