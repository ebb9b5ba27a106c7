// Google Benchmark of the CUDA backend's hot ops at real model shapes, each against the
// device-to-device copy bandwidth that the backend measures in the same process
// (counter pct_of_copy: bytes the op must move per call / time / copy bandwidth). Speed is
// measured here, never asserted in tests (bench/notes/cuda_backend.md has the history).
//
// Each of 25 iterations queues 20 calls and synchronises once (the time per call is set
// manually): an op is tens of microseconds, so the launch queue stays ahead of the GPU. Weights and
// caches are rotated over several copies so that no call finds its input in the 50 MB L2.
// Without a CUDA device, or in a build without KVLAB_CUDA, every benchmark is skipped with
// the reason.
//   build-cuda/bin/bench_cuda_ops --benchmark_filter=Gemv --benchmark_format=json
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/pruned_region.h"
#include "leank/demotion.h"
#include "core/dtype.h"

namespace kvlab {
namespace {

struct Device {
  std::unique_ptr<Backend> backend;
  double copy_bytes_per_s = 0;
  std::string unavailable;  // why there is no backend
};

Device& device() {
  static Device d = [] {
    Device r;
    if (!cuda_compiled()) {
      r.unavailable = "kvlab was built without KVLAB_CUDA";
    } else if (cuda_device_count() == 0) {
      r.unavailable = "no CUDA device is visible";
    } else {
      r.backend = make_backend(BackendKind::CUDA);
      r.copy_bytes_per_s = r.backend->measure_copy_bandwidth();
    }
    return r;
  }();
  return d;
}

Backend* backend_or_skip(benchmark::State& state) {
  Device& d = device();
  if (!d.backend) state.SkipWithError(d.unavailable.c_str());
  return d.backend.get();
}

// Uniform in [-scale, scale) from a hash of (seed, i): a GB of weights in about a second.
float uniform(uint64_t seed, uint64_t i, float scale) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + i + 1;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return scale * (float(x >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

Tensor random_activation(Backend& b, const std::vector<int64_t>& shape, uint32_t seed = 7) {
  Tensor t = b.alloc(shape, DType::F32);
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); i++) v[i] = uniform(seed, i, 1.0f);
  b.write(t, v.data(), v.size() * 4);
  return t;
}

Tensor random_weight(Backend& b, int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<uint16_t> v(size_t(rows * cols));
  for (size_t i = 0; i < v.size(); i++) v[i] = f32_to_bf16(uniform(seed, i, 0.05f));
  return b.upload_weight(v.data(), DType::BF16, {rows, cols});
}

// Weights of `rows` rows each, as separate allocations or (stacked) as consecutive row slices of
// one, the layout load_weights gives q, k, v and gate, up.
std::vector<Tensor> random_weights(Backend& b, const std::vector<int64_t>& rows, int64_t cols, bool stacked) {
  std::vector<Tensor> out;
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  const Tensor all = stacked ? b.alloc({total, cols}, b.weight_dtype(DType::BF16)) : Tensor{};
  int64_t row = 0;
  for (size_t i = 0; i < rows.size(); i++) {
    std::vector<uint16_t> v(size_t(rows[i] * cols));
    for (size_t j = 0; j < v.size(); j++) v[j] = f32_to_bf16(uniform(uint32_t(11 + i), j, 0.05f));
    if (!stacked) {
      out.push_back(b.upload_weight(v.data(), DType::BF16, {rows[i], cols}));
      continue;
    }
    out.push_back(all.slice(row, rows[i]));
    b.upload_weight_into(out.back(), v.data(), DType::BF16);
    row += rows[i];
  }
  return out;
}

// A KV cache of `layers` layers, each filled with `context` random tokens.
KVCache filled_cache(Backend& b, int layers, int kv_heads, int hd, int context, int capacity) {
  KVCache cache = b.alloc_kv_cache(layers, kv_heads, hd, capacity);
  const int chunk = std::min(context, 2048);
  Tensor kv = random_activation(b, {chunk, int64_t(kv_heads) * hd});
  Tensor pos = b.alloc({chunk}, DType::I32);
  std::vector<int32_t> p(static_cast<size_t>(chunk));
  for (int l = 0; l < layers; l++) {
    for (int done = 0; done < context; done += chunk) {
      const int n = std::min(chunk, context - done);
      for (int i = 0; i < n; i++) p[size_t(i)] = done + i;
      b.write(pos, p.data(), size_t(n) * 4);
      b.kv_append(cache, l, kv.slice(0, n), kv.slice(0, n), pos.slice(0, n));
    }
  }
  b.synchronize();
  return cache;
}

// A fixed count: Google Benchmark reruns the whole function (set-up included) while it probes
// for an iteration count, and set-up here means hundreds of MB of weights or cache.
constexpr int kIterations = 25;

// Times call(0), call(1), ... in batches; `bytes` is what one call must move at least.
// Returns the seconds per call.
double run(benchmark::State& state, Backend& b, double bytes, const std::function<void(int)>& call) {
  for (int i = 0; i < 3; i++) call(i);
  b.synchronize();
  constexpr int kCalls = 20;
  int next = 3;
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kCalls; i++) call(next++);
    b.synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    seconds += s;
    state.SetIterationTime(s / kCalls);
  }
  const double per_call = seconds / (double(state.iterations()) * kCalls);
  state.SetBytesProcessed(int64_t(double(state.iterations()) * bytes));
  state.counters["pct_of_copy"] = 100.0 * bytes / per_call / device().copy_bytes_per_s;
  state.counters["copy_GBps"] = device().copy_bytes_per_s / 1e9;
  return per_call;
}

// Decode GEMV: n tokens through an [out, in] bf16 weight (Llama-3.1-8B's o, gate and down, Qwen2.5's
// lm_head, and small batches).
void BM_Gemv(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int64_t out = state.range(0), in = state.range(1), n = state.range(2);
  const int copies = out * in * 2 > (int64_t(200) << 20) ? 1 : 4;
  std::vector<Tensor> w;
  for (int i = 0; i < copies; i++) w.push_back(random_weight(*b, out, in, uint32_t(11 + i)));
  Tensor x = random_activation(*b, {n, in}), y = b->alloc({n, out}, DType::F32);
  run(state, *b, double(out * in * 2), [&](int i) { b->matmul(x, w[size_t(i % copies)], nullptr, y); });
}
BENCHMARK(BM_Gemv)
    ->Args({4096, 4096, 1})
    ->Args({14336, 4096, 1})
    ->Args({4096, 14336, 1})
    ->Args({152064, 3584, 1})
    ->Args({4096, 14336, 4})
    ->Args({18944, 3584, 8})
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Llama-3.1-8B's input norm and q, k and v at batch 1, over 4 copies of the 48 MB of weights:
// rmsnorm, then one grouped GEMV launch (fused = 0), against the norm folded into that GEMV
// (fused = 1).
void BM_GemvQkv(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const bool fused = state.range(0) != 0;
  const int64_t hidden = 4096, kv = 1024;
  constexpr int kCopies = 4;
  std::vector<Tensor> q, k, v;
  for (int i = 0; i < kCopies; i++) {
    q.push_back(random_weight(*b, hidden, hidden, uint32_t(11 + i)));
    k.push_back(random_weight(*b, kv, hidden, uint32_t(21 + i)));
    v.push_back(random_weight(*b, kv, hidden, uint32_t(31 + i)));
  }
  Tensor x = random_activation(*b, {1, hidden}), yq = b->alloc({1, hidden}, DType::F32),
         yk = b->alloc({1, kv}, DType::F32), yv = b->alloc({1, kv}, DType::F32);
  Tensor norm = random_weight(*b, 1, hidden, 61).reshape({hidden}), normed = b->alloc({1, hidden}, DType::F32);
  run(state, *b, double((hidden + 2 * kv) * hidden * 2), [&](int i) {
    const size_t c = size_t(i % kCopies);
    if (fused) {
      b->matmuls(x, {{&q[c], nullptr, &yq}, {&k[c], nullptr, &yk}, {&v[c], nullptr, &yv}}, {&norm, 1e-5f, &normed});
    } else {
      b->rmsnorm(x, norm, 1e-5f, normed);
      b->matmuls(normed, {{&q[c], nullptr, &yq}, {&k[c], nullptr, &yk}, {&v[c], nullptr, &yv}}, {});
    }
  });
}
BENCHMARK(BM_GemvQkv)->Arg(0)->Arg(1)->Iterations(kIterations)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Llama-3.1-8B's post-attention norm, gate and up at batch 1 and SwiGLU: rmsnorm then the gated
// GEMV (fused = 0), against the norm folded into it (fused = 1).
void BM_GemvSwiglu(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const bool fused = state.range(0) != 0;
  const int64_t hidden = 4096, inter = 14336;
  constexpr int kCopies = 2;
  std::vector<Tensor> gate, up;
  for (int i = 0; i < kCopies; i++) {
    gate.push_back(random_weight(*b, inter, hidden, uint32_t(41 + i)));
    up.push_back(random_weight(*b, inter, hidden, uint32_t(51 + i)));
  }
  Tensor x = random_activation(*b, {1, hidden}), g = b->alloc({1, inter}, b->mlp_scratch_dtype()),
         u = b->alloc({1, inter}, b->mlp_scratch_dtype()), y = b->alloc({1, inter}, DType::F32);
  Tensor norm = random_weight(*b, 1, hidden, 62).reshape({hidden}), normed = b->alloc({1, hidden}, DType::F32);
  run(state, *b, double(2 * inter * hidden * 2), [&](int i) {
    const size_t c = size_t(i % kCopies);
    if (fused) {
      b->matmul_swiglu(x, gate[c], up[c], g, u, y, {&norm, 1e-5f, &normed});
    } else {
      b->rmsnorm(x, norm, 1e-5f, normed);
      b->matmul_swiglu(normed, gate[c], up[c], g, u, y, {});
    }
  });
}
BENCHMARK(BM_GemvSwiglu)->Arg(0)->Arg(1)->Iterations(kIterations)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Decode attention: one query over `context` cached tokens of head_dim 128; two layers
// alternate so that one layer's K/V is never in L2.
void BM_DecodeAttention(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int q_heads = int(state.range(0)), kv_heads = int(state.range(1)), context = int(state.range(2)), hd = 128;
  KVCache cache = filled_cache(*b, 2, kv_heads, hd, context, context);
  Tensor q = random_activation(*b, {1, int64_t(q_heads) * hd}), out = b->alloc({1, int64_t(q_heads) * hd}, DType::F32);
  const float scale = 1.0f / std::sqrt(float(hd));
  run(state, *b, 2.0 * kv_heads * double(context) * hd * 2, [&](int i) { b->attention(q, cache, i % 2, scale, out); });
}
BENCHMARK(BM_DecodeAttention)
    ->Args({32, 8, 32768})
    ->Args({28, 4, 32768})
    ->Args({32, 8, 4096})
    ->Args({32, 8, 131072})
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// The same decode attention with LeanK's layout: the sink (128) and recent window (768) at
// every channel in a full region of 1024 slots, the rest of the context in the middle with
// kept channels per head at 70.3% K sparsity over the two alternating layers (counts
// {0,32,32,32,32,64,64,32} and {0,32,32,64,32,64,64,32}: one head in eight keeps none, as
// LeanK's trained masks have them). pct_of_copy counts what the layout holds.
void BM_DecodeAttentionLeanK(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int q_heads = int(state.range(0)), kv_heads = 8, context = int(state.range(1)), hd = 128;
  const std::vector<int> counts = {0, 32, 32, 32, 32, 64, 64, 32, 0, 32, 32, 64, 32, 64, 64, 32};
  std::vector<int32_t> keep(counts.size() * hd, 0);
  for (size_t lh = 0; lh < counts.size(); lh++)
    for (int c = 0; c < counts[lh]; c++) keep[lh * hd + size_t((c * 5) % hd)] = 1;  // scattered channels
  KVCache cache = filled_cache(*b, 2, kv_heads, hd, context, context);
  cache.host_length.assign(size_t(2 * kv_heads), context);
  const LeanKWindow w{128, 768, 128};
  attach_pruned_region(*b, cache, keep, context - w.sink - w.recent, w.sink);
  Demoter(*b, w).demote(cache, true);
  resize_full_region(*b, cache, w.full_capacity());
  b->synchronize();
  Tensor q = random_activation(*b, {1, int64_t(q_heads) * hd}), out = b->alloc({1, int64_t(q_heads) * hd}, DType::F32);
  const float scale = 1.0f / std::sqrt(float(hd));
  state.counters["k_sparsity"] = 1.0 - 608.0 / 2048.0;
  run(state, *b, double(cache.k_bytes() + cache.v_bytes()) / 2, [&](int i) { b->attention(q, cache, i % 2, scale, out); });
}
BENCHMARK(BM_DecodeAttentionLeanK)
    ->Args({32, 32768})
    ->Args({32, 131072})
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// A decode step's attention at Llama-3.1-8B's shape after `context` tokens (the cache grows by one
// a call): the input norm and q, k, v, then rope + append and attention as launches of their own
// (Arg 0), or rope + append folded into the q/k/v GEMV and decode attention (Arg 1,
// Backend::Attend). Two copies of the weights, so that L2 holds neither between calls.
void BM_DecodeAttentionStep(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const bool folded = state.range(0) != 0;
  const int context = int(state.range(1)), hidden = 4096, q_heads = 32, kv_heads = 8, hd = 128;
  constexpr int kCopies = 2;
  std::vector<std::vector<Tensor>> w;
  for (int c = 0; c < kCopies; c++)
    w.push_back(random_weights(*b, {q_heads * hd, kv_heads * hd, kv_heads * hd}, hidden, true));
  Tensor x = random_activation(*b, {1, hidden}), norm = random_weight(*b, 1, hidden, 5).reshape({hidden});
  Tensor normed = b->alloc({1, hidden}, DType::F32), q = b->alloc({1, int64_t(q_heads) * hd}, DType::F32);
  Tensor k = b->alloc({1, int64_t(kv_heads) * hd}, DType::F32), v = b->alloc({1, int64_t(kv_heads) * hd}, DType::F32);
  Tensor out = b->alloc({1, int64_t(q_heads) * hd}, DType::F32);
  KVCache cache = filled_cache(*b, 1, kv_heads, hd, context, context + 4 + kIterations * 20);
  std::vector<float> freq(size_t(hd / 2));
  for (int i = 0; i < hd / 2; i++) freq[size_t(i)] = std::pow(5e5f, -2.0f * i / hd);
  RopeTable rope{b->alloc({hd / 2}, DType::F32), 1.0f};
  b->write(rope.inv_freq, freq.data(), freq.size() * 4);
  Tensor pos = b->alloc({1}, DType::I32);
  b->write(pos, &context, 4);
  const float scale = 1.0f / std::sqrt(float(hd));
  const double bytes = double(w[0][0].bytes() + w[0][1].bytes() + w[0][2].bytes()) + 2.0 * kv_heads * context * hd * 2;
  run(state, *b, bytes, [&](int i) {
    const std::vector<Tensor>& wc = w[size_t(i % kCopies)];
    b->attention_input(x, {&norm, 1e-5f, &normed}, {&wc[0], nullptr, &q}, {&wc[1], nullptr, &k},
                       {&wc[2], nullptr, &v}, pos, rope, hd, cache, 0, pos, {}, {scale, folded ? &out : nullptr});
    if (!folded) b->attention(q, cache, 0, scale, out);
  });
}
BENCHMARK(BM_DecodeAttentionStep)
    ->Args({0, 1024})
    ->Args({1, 1024})
    ->Args({0, 8192})
    ->Args({1, 8192})
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// H2O's per-step scores: one query's probabilities added per slot (reads K twice: the floor
// counted here is one read).
void BM_AccumulateAttention(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int q_heads = int(state.range(0)), kv_heads = int(state.range(1)), context = int(state.range(2)), hd = 128;
  const int n = int(state.range(3));
  KVCache cache = filled_cache(*b, 2, kv_heads, hd, context, context);
  cache.score = b->alloc({2, kv_heads, context}, DType::F32);
  const std::vector<float> zeros(size_t(cache.score.numel()), 0.0f);
  b->write(cache.score, zeros.data(), zeros.size() * 4);
  Tensor q = random_activation(*b, {n, int64_t(q_heads) * hd});
  const float scale = 1.0f / std::sqrt(float(hd));
  run(state, *b, double(kv_heads) * context * hd * 2,
      [&](int i) { b->accumulate_attention(q, cache, i % 2, scale, 0); });
}
BENCHMARK(BM_AccumulateAttention)
    ->Args({32, 8, 32768, 1})
    ->Args({32, 8, 4096, 1})
    ->Args({32, 8, 32768, 32})
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Compaction of one layer keeping every other slot, re-rotating the moved keys; the length is
// restored before each call (on the stream), so every call moves the same rows.
void BM_KvCompact(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int kv_heads = 8, hd = 128, capacity = int(state.range(0));
  KVCache cache = filled_cache(*b, 1, kv_heads, hd, capacity, capacity);
  std::vector<int32_t> keep(size_t(kv_heads) * capacity, 0), count(size_t(kv_heads), capacity / 2);
  for (int h = 0; h < kv_heads; h++)
    for (int j = 0; j < capacity / 2; j++) keep[size_t(h) * capacity + j] = 2 * j + 1;
  Tensor kt = b->alloc({kv_heads, capacity}, DType::I32), ct = b->alloc({kv_heads}, DType::I32);
  b->write(kt, keep.data(), keep.size() * 4);
  b->write(ct, count.data(), count.size() * 4);
  const std::vector<int32_t> full(size_t(kv_heads), capacity);
  std::vector<float> freq(size_t(hd / 2));
  for (int i = 0; i < hd / 2; i++) freq[size_t(i)] = std::pow(5e5f, -2.0f * i / hd);
  RopeTable rope{b->alloc({hd / 2}, DType::F32), 1.0f};
  b->write(rope.inv_freq, freq.data(), freq.size() * 4);
  // Kept rows of K and V, read once and written once.
  run(state, *b, 2.0 * 2 * kv_heads * (capacity / 2) * double(hd) * 2, [&](int) {
    b->write(cache.length, full.data(), full.size() * 4);
    b->kv_compact(cache, 0, kt, ct, {false, &rope});
  });
}
BENCHMARK(BM_KvCompact)->Arg(4096)->Arg(32768)->Iterations(kIterations)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Compute-bound prefill paths: TFLOP/s instead of bandwidth.
// Args: rows n, outputs, inputs. Llama-3.1-8B's projections at a 512- and a 1,024-token chunk:
// q and o (4096 x 4096), k and v (1024 x 4096), gate and up (14336 x 4096), down (4096 x 14336);
// q/k/v and gate/up as one matrix (6144, 28672).
void BM_PrefillMatmul(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int64_t n = state.range(0), out = state.range(1), in = state.range(2);
  Tensor w = random_weight(*b, out, in, 3), x = random_activation(*b, {n, in}), y = b->alloc({n, out}, DType::F32);
  const double s = run(state, *b, double(out * in * 2), [&](int) { b->matmul(x, w, nullptr, y); });
  state.counters["TFLOPs"] = 2.0 * n * in * out / s * 1e-12;
}
BENCHMARK(BM_PrefillMatmul)
    ->Args({512, 4096, 4096})
    ->Args({512, 1024, 4096})
    ->Args({512, 14336, 4096})
    ->Args({512, 4096, 14336})
    ->Args({512, 6144, 4096})
    ->Args({512, 28672, 4096})
    ->Args({1024, 4096, 4096})
    ->Args({1024, 1024, 4096})
    ->Args({1024, 6144, 4096})
    ->Args({1024, 14336, 4096})
    ->Args({1024, 28672, 4096})
    ->Args({2048, 1024, 4096})
    ->Args({2048, 14336, 4096})
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// A 1,024-token chunk's attention input (q, k, v and rope + append) and MLP at Llama-3.1-8B's
// shape, with the projections' weights stacked (Arg 1: one GEMM each) or apart (Arg 0).
void BM_PrefillAttentionInput(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int n = 1024, hidden = 4096, q_heads = 32, kv_heads = 8, hd = 128;
  std::vector<Tensor> w = random_weights(*b, {q_heads * hd, kv_heads * hd, kv_heads * hd}, hidden, state.range(0));
  Tensor x = random_activation(*b, {n, hidden}), norm = random_weight(*b, 1, hidden, 5).reshape({hidden});
  Tensor normed = b->alloc({n, hidden}, DType::F32), q = b->alloc({n, int64_t(q_heads) * hd}, DType::F32);
  Tensor k = b->alloc({n, int64_t(kv_heads) * hd}, DType::F32), v = b->alloc({n, int64_t(kv_heads) * hd}, DType::F32);
  KVCache cache = b->alloc_kv_cache(1, kv_heads, hd, n);
  std::vector<float> freq(size_t(hd / 2));
  for (int i = 0; i < hd / 2; i++) freq[size_t(i)] = std::pow(5e5f, -2.0f * i / hd);
  RopeTable rope{b->alloc({hd / 2}, DType::F32), 1.0f};
  b->write(rope.inv_freq, freq.data(), freq.size() * 4);
  std::vector<int32_t> p(static_cast<size_t>(n)), zero(static_cast<size_t>(kv_heads), 0);
  for (int i = 0; i < n; i++) p[size_t(i)] = i;
  Tensor pos = b->alloc({n}, DType::I32);
  b->write(pos, p.data(), p.size() * 4);
  const double s = run(state, *b, double(w[0].bytes() + w[1].bytes() + w[2].bytes()), [&](int) {
    b->write(cache.length, zero.data(), zero.size() * 4);
    b->attention_input(x, {&norm, 1e-5f, &normed}, {&w[0], nullptr, &q}, {&w[1], nullptr, &k}, {&w[2], nullptr, &v},
                       pos, rope, hd, cache, 0, pos, {}, {});
  });
  state.counters["TFLOPs"] = 2.0 * n * hidden * (q_heads + 2 * kv_heads) * hd / s * 1e-12;
}
BENCHMARK(BM_PrefillAttentionInput)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_PrefillMlp(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int64_t n = 1024, hidden = 4096, inter = 14336;
  std::vector<Tensor> gate_up = random_weights(*b, {inter, inter}, hidden, state.range(0));
  Tensor down = random_weight(*b, hidden, inter, 9), norm = random_weight(*b, 1, hidden, 5).reshape({hidden});
  Tensor x = random_activation(*b, {n, hidden}), normed = b->alloc({n, hidden}, DType::F32);
  // gate's and up's scratch adjacent, as the transformer's workspace has them.
  const Tensor gu = b->alloc({2 * n, inter}, b->mlp_scratch_dtype());
  Tensor g = gu.slice(0, n), u = gu.slice(n, n), a = b->alloc({n, inter}, b->mlp_scratch_dtype());
  const double s = run(state, *b, double(gate_up[0].bytes() * 2 + down.bytes()), [&](int) {
    b->mlp(x, gate_up[0], gate_up[1], down, g, u, a, {&norm, 1e-5f, &normed});
  });
  state.counters["TFLOPs"] = 2.0 * n * hidden * inter * 3 / s * 1e-12;
}
BENCHMARK(BM_PrefillMlp)->Arg(0)->Arg(1)->Iterations(kIterations)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Args: n new tokens after `prefix` cached ones; 32 query / 8 KV heads of 128.
void BM_PrefillAttention(benchmark::State& state) {
  Backend* b = backend_or_skip(state);
  if (!b) return;
  const int q_heads = 32, kv_heads = 8, hd = 128, n = int(state.range(0)), prefix = int(state.range(1));
  KVCache cache = filled_cache(*b, 1, kv_heads, hd, prefix + n, prefix + n);
  cache.host_length.assign(size_t(kv_heads), prefix);  // as the transformer's mirror has it before the chunk
  Tensor q = random_activation(*b, {n, int64_t(q_heads) * hd}), out = b->alloc({n, int64_t(q_heads) * hd}, DType::F32);
  const double s = run(state, *b, 2.0 * kv_heads * double(prefix + n) * hd * 2,
                       [&](int) { b->attention(q, cache, 0, 0.088f, out); });
  // Query i attends to prefix + i + 1 keys: QK^T and PV, 2 flops per multiply-add.
  state.counters["TFLOPs"] = 4.0 * q_heads * hd * (double(n) * prefix + double(n) * (n + 1) / 2) / s * 1e-12;
}
BENCHMARK(BM_PrefillAttention)
    ->Args({512, 3584})
    ->Args({1024, 0})
    ->Args({1024, 1024})
    ->Args({1024, 3072})
    ->Args({1024, 7168})
    ->Args({1024, 31744})
    ->Iterations(kIterations)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kvlab
