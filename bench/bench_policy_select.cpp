// Google Benchmark of a cache policy's selection on the host, as a decode-time call sees it at
// the Llama-3.1-8B shape (32 layers x 8 KV heads): every head holds the budget plus one
// interval (64) of new slots. This is the host share of the `policy %` kvlab-bench reports
// (the rest: reading scores, uploading the plan, the compaction kernels, position updates),
// with the host allocator set up as CachedSequence sets it (core/host_memory.h).
#include <benchmark/benchmark.h>

#include <numeric>
#include <random>

#include "cache/registry.h"
#include "core/host_memory.h"

namespace kvlab {
namespace {

void BM_PolicySelect(benchmark::State& state, const char* name) {
  keep_freed_host_memory();
  const int layers = 32, heads = 8, budget = int(state.range(0)), held = budget + 64;
  std::vector<std::vector<int32_t>> positions(size_t(layers * heads), std::vector<int32_t>(size_t(held)));
  for (auto& p : positions) std::iota(p.begin(), p.end(), 0);
  std::vector<float> scores(size_t(layers * heads) * size_t(held));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& s : scores) s = u(rng);
  CacheState s;
  s.layers = layers;
  s.kv_heads = heads;
  s.phase = CachePhase::Decode;
  s.tokens_seen = held;
  s.positions = &positions;
  s.scores = &scores;
  s.capacity = held;
  for (auto _ : state) {
    state.PauseTiming();  // a fresh policy each call: LaCache keeps state between calls
    std::unique_ptr<CachePolicy> policy = make_policy(name, nlohmann::json::object(), layers, heads, budget);
    state.ResumeTiming();
    std::optional<KeepPlan> plan = policy->select(s);
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK_CAPTURE(BM_PolicySelect, lacache, "lacache")->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_PolicySelect, streaming, "streaming")->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_PolicySelect, h2o, "h2o")->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kvlab
