#include "backend/pruned_region.h"

#include <algorithm>

#include "core/error.h"

namespace kvlab {

namespace {

Tensor upload_i32(Backend& b, const std::vector<int64_t>& shape, const std::vector<int32_t>& host) {
  Tensor t = b.alloc(shape, DType::I32);
  b.write(t, host.data(), host.size() * sizeof(int32_t));
  return t;
}

Tensor zeros_f32(Backend& b, const std::vector<int64_t>& shape) {
  Tensor t = b.alloc(shape, DType::F32);
  const std::vector<float> zeros(size_t(t.numel()), 0.0f);
  b.write(t, zeros.data(), zeros.size() * sizeof(float));
  return t;
}

// Rows [first, first + count) of a tensor seen as [rows, last dim], as a view.
Tensor rows_of(const Tensor& t, int64_t first, int64_t count) { return t.reshape({t.numel() / t.cols(), t.cols()}).slice(first, count); }

// Copies the first `slots` rows of each of `heads` blocks of `old_rows` rows into blocks of
// `new_rows` rows, through the host (a one-off after the prompt, and only the kept slots).
void copy_blocks(Backend& b, const Tensor& from, Tensor& to, int64_t heads, int64_t old_rows, int64_t new_rows,
                 const std::vector<int32_t>& slots) {
  const int64_t width = from.cols();
  std::vector<char> host;
  for (int64_t h = 0; h < heads; h++) {
    const int64_t n = slots[size_t(h)];
    if (n == 0) continue;
    const size_t bytes = size_t(n * width) * dtype_size(from.dtype);
    host.resize(bytes);
    b.read(rows_of(from, h * old_rows, n), host.data(), bytes);
    Tensor dst = rows_of(to, h * new_rows, n);
    b.write(dst, host.data(), bytes);
  }
}

}  // namespace

void attach_pruned_region(Backend& b, KVCache& cache, const std::vector<int32_t>& keep, int capacity, int sink) {
  const int layers = cache.layers, heads = cache.kv_heads, hd = cache.head_dim;
  KVLAB_ASSERT(keep.size() == size_t(layers) * heads * hd && capacity > 0 && sink >= 0);
  ChannelPrunedKV& m = cache.pruned;
  m = ChannelPrunedKV{};
  m.capacity = capacity;
  m.host_kept.assign(size_t(layers * heads), 0);
  m.host_length.assign(size_t(layers * heads), 0);
  m.host_front.assign(size_t(layers * heads), sink);
  std::vector<int32_t> channels(keep.size(), 0), k_offset(size_t(layers * heads), 0), v_row(size_t(layers * heads), -1);
  for (int l = 0; l < layers; l++) {
    int64_t k_elements = 0;
    int v_rows = 0;
    for (int h = 0; h < heads; h++) {
      const size_t lh = size_t(l * heads + h);
      int kept = 0;
      for (int c = 0; c < hd; c++)
        if (keep[lh * size_t(hd) + size_t(c)]) channels[lh * size_t(hd) + size_t(kept++)] = c;
      m.host_kept[lh] = kept;
      if (int64_t(k_elements) > INT32_MAX - int64_t(kept) * capacity)
        fail("LeanK middle region of layer " + std::to_string(l) + " exceeds 2^31 elements; use a smaller context");
      k_offset[lh] = int32_t(k_elements);
      k_elements += int64_t(kept) * capacity;
      if (kept > 0) v_row[lh] = v_rows++;
    }
    m.k.push_back(k_elements ? b.alloc({k_elements}, b.kv_dtype()) : Tensor{});
    m.v.push_back(v_rows ? b.alloc({v_rows, capacity, hd}, b.kv_dtype()) : Tensor{});
  }
  m.kept = upload_i32(b, {layers, heads}, m.host_kept);
  m.channels = upload_i32(b, {layers, heads, hd}, channels);
  m.k_offset = upload_i32(b, {layers, heads}, k_offset);
  m.v_row = upload_i32(b, {layers, heads}, v_row);
  m.length = upload_i32(b, {layers, heads}, m.host_length);
  m.front = upload_i32(b, {layers, heads}, m.host_front);
  m.position = b.alloc({layers, heads, capacity}, DType::I32);
}

void attach_scores(Backend& b, KVCache& cache) {
  cache.score = zeros_f32(b, {cache.layers, cache.kv_heads, cache.capacity});
  if (!cache.pruned.empty()) cache.pruned.score = zeros_f32(b, {cache.layers, cache.kv_heads, cache.pruned.capacity});
}

void resize_full_region(Backend& b, KVCache& cache, int capacity) {
  KVLAB_ASSERT(capacity >= cache.max_length() && capacity > 0);
  if (capacity == cache.capacity) return;
  const int layers = cache.layers, heads = cache.kv_heads, old = cache.capacity;
  for (int l = 0; l < layers; l++) {
    const std::vector<int32_t> lengths(cache.host_length.begin() + l * heads, cache.host_length.begin() + (l + 1) * heads);
    for (Tensor* t : {&cache.k[size_t(l)], &cache.v[size_t(l)]}) {
      Tensor fresh = b.alloc({heads, capacity, cache.head_dim}, t->dtype);
      copy_blocks(b, *t, fresh, heads, old, capacity, lengths);
      *t = fresh;
    }
  }
  // Positions and scores: one row of `capacity` per (layer, head).
  for (Tensor* t : {&cache.position, &cache.score}) {
    if (t->empty()) continue;
    Tensor fresh = t->dtype == DType::F32 ? zeros_f32(b, {layers, heads, capacity}) : b.alloc({layers, heads, capacity}, t->dtype);
    std::vector<int32_t> lengths = cache.host_length;
    Tensor from = t->reshape({int64_t(layers) * heads * old, 1}), to = fresh.reshape({int64_t(layers) * heads * capacity, 1});
    copy_blocks(b, from, to, int64_t(layers) * heads, old, capacity, lengths);
    *t = fresh;
  }
  cache.capacity = capacity;
}

}  // namespace kvlab
