#include "backend/kv_cache.h"

#include <algorithm>

namespace kvlab {

namespace {
size_t sum_bytes(const std::vector<Tensor>& ts) {
  size_t n = 0;
  for (const Tensor& t : ts) n += t.empty() ? 0 : t.bytes();
  return n;
}
size_t bytes_or_zero(const Tensor& t) { return t.empty() ? 0 : t.bytes(); }
}  // namespace

size_t ChannelPrunedKV::k_bytes() const { return sum_bytes(k); }
size_t ChannelPrunedKV::v_bytes() const { return sum_bytes(v); }

size_t KVCache::k_bytes() const { return sum_bytes(k) + pruned.k_bytes(); }
size_t KVCache::v_bytes() const { return sum_bytes(v) + pruned.v_bytes(); }

size_t KVCache::bytes() const {
  size_t n = bytes_or_zero(length) + bytes_or_zero(position) + bytes_or_zero(score) + k_bytes() + v_bytes();
  for (const Tensor* t : {&pruned.length, &pruned.position, &pruned.score, &pruned.kept, &pruned.channels,
                          &pruned.k_offset, &pruned.v_row, &pruned.front})
    n += bytes_or_zero(*t);
  return n;
}

int32_t KVCache::max_length() const {
  return host_length.empty() ? 0 : *std::max_element(host_length.begin(), host_length.end());
}

}  // namespace kvlab
