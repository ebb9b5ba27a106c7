#pragma once
// A cache policy's choice, made over every kept token in age order, split between the regions
// of a KV store with LeanK's middle (kv_cache.h: full-region slots [0, front), then the middle,
// then full-region slots [front, length)), with what renumbering policies need to re-rotate the
// keys that stay: a slot's age index is its slot, plus the middle's length past the front.
#include <cstdint>
#include <vector>

#include "backend/kv_cache.h"
#include "cache/policy.h"

namespace kvlab {

struct RegionPlans {
  KeepPlan full, middle;        // slot lists of each region, per (layer * kv_heads + head)
  std::vector<int32_t> front;   // the new front per (layer, head)
  // [region (0 full, 1 middle), layer, head, 2]: (from, extra) for CompactKeys::shift.
  std::vector<int32_t> shift;
};

RegionPlans split_by_region(const KeepPlan& plan, const ChannelPrunedKV& middle);

// The other way, for the policies that rank by attention: per (layer, head), the scores of both
// regions in age order, in rows of full_capacity + middle.capacity (zeros past the held slots).
// full: [layers * kv_heads, full_capacity], middle: [layers * kv_heads, middle.capacity].
void scores_in_age_order(const std::vector<float>& full, int full_capacity, const std::vector<int32_t>& full_length,
                         const std::vector<float>& middle, const ChannelPrunedKV& region, std::vector<float>& out);

}  // namespace kvlab
