#include "backend/kv_cache.h"

#include <algorithm>

namespace kvlab {

size_t KVCache::bytes() const {
  size_t n = length.bytes() + position.bytes() + (score.empty() ? 0 : score.bytes());
  for (const Tensor& t : k) n += t.bytes();
  for (const Tensor& t : v) n += t.bytes();
  return n;
}

int32_t KVCache::max_length() const {
  return host_length.empty() ? 0 : *std::max_element(host_length.begin(), host_length.end());
}

}  // namespace kvlab
