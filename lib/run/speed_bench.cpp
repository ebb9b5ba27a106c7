#include "run/speed_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "backend/pruned_region.h"
#include "core/error.h"
#include "core/stats.h"
#include "model/transformer.h"

namespace kvlab {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
// Bytes the allocator gives back when `tensors` go (they must hold the last handles).
size_t freed_bytes(Backend& b, std::vector<Tensor>& tensors) {
  const size_t before = b.allocated_bytes();
  tensors.clear();
  return before - b.allocated_bytes();
}
}  // namespace

ChannelImportance synthetic_importance(const ModelConfig& c, uint64_t seed) {
  ChannelImportance imp;
  imp.model = ModelFingerprint::of(c);
  imp.source = "synthetic";
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::normal_distribution<float> head_scale(0.0f, 1.0f);
  imp.values.resize(size_t(imp.model.channels()));
  for (size_t head = 0; head < imp.values.size() / size_t(c.head_dim); head++) {
    const float scale = std::exp(head_scale(rng));
    for (int i = 0; i < c.head_dim; i++) imp.values[head * size_t(c.head_dim) + size_t(i)] = u(rng) * scale;
  }
  return imp;
}

double decode_weight_bytes(const Transformer& model) {
  const ModelWeights& w = model.weights();
  const double embed_row = double(w.embed.bytes()) / double(w.embed.dim(0));
  const bool tied = w.lm_head.data == w.embed.data;
  // Untied: the embedding table is not read beyond one row; tied: it is read as lm_head.
  return double(w.bytes) - (tied ? 0.0 : double(w.embed.bytes()) - embed_row);
}

std::vector<SpeedRow> run_speed_bench(Transformer& model, const SpeedBenchOptions& o, double copy_bytes_per_s) {
  Backend& b = model.backend();
  const ModelConfig& c = model.config();
  const double weights = decode_weight_bytes(model);
  const double kv_bytes_per_token = 2.0 * c.num_layers * c.kv_dim() * double(dtype_size(b.kv_dtype()));
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(0, c.vocab_size - 1);
  Tensor next = b.alloc({1}, DType::I32);
  std::vector<SpeedRow> rows;
  for (int context : o.contexts) {
    if (context < 1) fail("bench: context lengths must be positive");
    b.reset_peak();
    SpeedRow r;
    r.context = context;
    KVCache cache = model.new_cache(context + o.warmup_tokens + o.decode_tokens);
    r.kv_bytes = cache.bytes();
    std::vector<int32_t> ids(static_cast<size_t>(context)), pos(static_cast<size_t>(context));
    for (int i = 0; i < context; i++) {
      ids[size_t(i)] = token(rng);
      pos[size_t(i)] = i;
    }
    b.synchronize();
    auto t0 = Clock::now();
    Tensor logits;
    for (int begin = 0; begin < context; begin += model.max_chunk()) {
      const int n = std::min(model.max_chunk(), context - begin);
      std::vector<int32_t> chunk(ids.begin() + begin, ids.begin() + begin + n);
      std::vector<int32_t> chunk_pos(pos.begin() + begin, pos.begin() + begin + n);
      logits = model.forward(chunk, chunk_pos, cache, begin + n == context ? Logits::Last : Logits::None);
    }
    b.argmax(logits, next);
    int32_t id = 0;
    b.read(next, &id, sizeof id);
    r.ttft_s = seconds_since(t0);
    r.prefill_tokens_per_s = context / r.ttft_s;
    std::unique_ptr<Demoter> demoter;
    if (o.leank_mask) {
      attach_channel_mask(b, cache, *o.leank_mask, o.leank, cache.capacity);
      demoter = std::make_unique<Demoter>(b, o.leank);
      demoter->demote(cache, true);
      resize_full_region(b, cache, std::min(cache.capacity, std::max(cache.max_length(), o.leank.full_capacity())));
      b.synchronize();
      r.kv_bytes = cache.bytes();
    }

    std::vector<double> step_s;
    for (int step = 0; step < o.warmup_tokens + o.decode_tokens; step++) {
      auto t = Clock::now();
      b.argmax(model.forward({id}, {context + step}, cache, Logits::Last), next);
      b.read(next, &id, sizeof id);
      if (demoter) {
        demoter->demote(cache, false);
        b.synchronize();
      }
      if (step >= o.warmup_tokens) step_s.push_back(seconds_since(t));
    }
    r.decode_tokens_per_s = step_s.empty() ? 0 : 1.0 / mean(step_s);
    r.latency_ms_p50 = percentile(step_s, 50) * 1e3;
    r.latency_ms_p90 = percentile(step_s, 90) * 1e3;
    r.latency_ms_p99 = percentile(step_s, 99) * 1e3;
    const double mid_context = context + o.warmup_tokens + o.decode_tokens / 2.0;
    r.bytes_per_token = weights + kv_bytes_per_token * mid_context;
    r.roofline_tokens_per_s = copy_bytes_per_s / r.bytes_per_token;
    r.roofline_fraction = r.decode_tokens_per_s / r.roofline_tokens_per_s;
    r.peak_bytes = b.peak_allocated_bytes();
    r.k_bytes_allocator = freed_bytes(b, cache.k) + freed_bytes(b, cache.pruned.k);
    r.v_bytes_allocator = freed_bytes(b, cache.v) + freed_bytes(b, cache.pruned.v);
    rows.push_back(r);
  }
  return rows;
}

nlohmann::json to_json(const SpeedRow& r) {
  return {{"context", r.context},
          {"prefill_tokens_per_s", r.prefill_tokens_per_s},
          {"ttft_s", r.ttft_s},
          {"decode_tokens_per_s", r.decode_tokens_per_s},
          {"latency_ms_p50", r.latency_ms_p50},
          {"latency_ms_p90", r.latency_ms_p90},
          {"latency_ms_p99", r.latency_ms_p99},
          {"bytes_per_token", r.bytes_per_token},
          {"roofline_tokens_per_s", r.roofline_tokens_per_s},
          {"roofline_fraction", r.roofline_fraction},
          {"peak_bytes", r.peak_bytes},
          {"kv_bytes", r.kv_bytes},
          {"k_bytes_allocator", r.k_bytes_allocator},
          {"v_bytes_allocator", r.v_bytes_allocator}};
}

std::string markdown_table(const std::string& model_name, const std::string& backend, const std::vector<SpeedRow>& rows) {
  std::string s =
      "| model | backend | context | prefill tok/s | TTFT s | decode tok/s | p50 ms | p90 ms | p99 ms | % roofline | peak GiB "
      "| K GiB | V GiB |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  char buf[512];
  for (const SpeedRow& r : rows) {
    std::snprintf(buf, sizeof buf, "| %s | %s | %d | %.0f | %.3f | %.1f | %.2f | %.2f | %.2f | %.1f%% | %.2f | %.3f | %.3f |\n",
                  model_name.c_str(), backend.c_str(), r.context, r.prefill_tokens_per_s, r.ttft_s,
                  r.decode_tokens_per_s, r.latency_ms_p50, r.latency_ms_p90, r.latency_ms_p99,
                  100 * r.roofline_fraction, double(r.peak_bytes) / double(1 << 30),
                  double(r.k_bytes_allocator) / double(1 << 30), double(r.v_bytes_allocator) / double(1 << 30));
    s += buf;
  }
  return s;
}

}  // namespace kvlab
