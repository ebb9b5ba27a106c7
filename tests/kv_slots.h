#pragma once
// What the model tests compare of two KV caches: every head's written slots.
#include <vector>

#include "backend/backend.h"

namespace kvlab::testing {

// The first `slots` slots of every head of a cache tensor [heads, capacity, head_dim], as floats
// (the slots past them may be uninitialised memory).
inline std::vector<float> written_slots(Backend& b, const Tensor& t, int slots) {
  const std::vector<float> all = b.to_host_f32(t);
  const size_t heads = size_t(t.shape[0]), per_head = all.size() / heads, used = size_t(slots) * size_t(t.shape[2]);
  std::vector<float> out;
  for (size_t h = 0; h < heads; h++)
    out.insert(out.end(), all.begin() + long(h * per_head), all.begin() + long(h * per_head + used));
  return out;
}

}  // namespace kvlab::testing
