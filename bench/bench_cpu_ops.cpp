// Google Benchmark of the CPU reference backend's hot ops at real model shapes. The CPU backend
// is the oracle, not the fast path; these numbers say what a CPU-only user can expect.
#include <benchmark/benchmark.h>

#include <random>

#include "backend/cpu/cpu_backend.h"

namespace kvlab {
namespace {

Tensor random_tensor(Backend& b, std::vector<int64_t> shape) {
  Tensor t = b.alloc(shape, DType::F32);
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(size_t(t.numel()));
  for (float& x : v) x = d(rng);
  b.write(t, v.data(), v.size() * 4);
  return t;
}

// Decode GEMV: one token through an [out, in] weight (Llama-3.1-8B's q_proj and down_proj).
void BM_DecodeMatmul(benchmark::State& state) {
  auto b = make_cpu_backend();
  const int64_t out = state.range(0), in = state.range(1);
  Tensor x = random_tensor(*b, {1, in}), w = random_tensor(*b, {out, in}), y = b->alloc({1, out}, DType::F32);
  for (auto _ : state) {
    b->matmul(x, w, nullptr, y);
    benchmark::DoNotOptimize(y.data);
  }
  state.SetBytesProcessed(state.iterations() * out * in * 4);
}
BENCHMARK(BM_DecodeMatmul)->Args({4096, 4096})->Args({4096, 14336})->Unit(benchmark::kMicrosecond);

// Decode attention: one query token, 32 query heads over 8 KV heads of 128 dims, at a context.
void BM_DecodeAttention(benchmark::State& state) {
  auto b = make_cpu_backend();
  const int ctx = int(state.range(0)), kvh = 8, hd = 128, qh = 32;
  KVCache cache = b->alloc_kv_cache(1, kvh, hd, ctx + 1);
  Tensor k = random_tensor(*b, {ctx, kvh * hd}), v = random_tensor(*b, {ctx, kvh * hd});
  Tensor pos = b->alloc({ctx}, DType::I32);
  std::vector<int32_t> p(static_cast<size_t>(ctx));
  for (int i = 0; i < ctx; i++) p[size_t(i)] = i;
  b->write(pos, p.data(), p.size() * 4);
  b->kv_append(cache, 0, k, v, pos);
  Tensor q = random_tensor(*b, {1, qh * hd}), out = b->alloc({1, qh * hd}, DType::F32);
  for (auto _ : state) {
    b->attention(q, cache, 0, 0.088f, out);
    benchmark::DoNotOptimize(out.data);
  }
  state.SetBytesProcessed(state.iterations() * int64_t(ctx) * kvh * hd * 4 * 2);
}
BENCHMARK(BM_DecodeAttention)->Arg(1024)->Arg(8192)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kvlab
