#include "run/speed_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <tuple>

#include "backend/pruned_region.h"
#include "core/error.h"
#include "core/stats.h"
#include "model/memory_plan.h"
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

namespace {

// How a row feeds tokens: straight into the model (the full cache, nothing added, or LeanK's
// demotions), or through a CachedSequence under a token policy.
class Feeder {
 public:
  Feeder(Transformer& model, const SpeedBenchOptions& o, int context) : model_(model), o_(o) {
    const int steps = o.warmup_tokens + o.decode_tokens;
    if (o.cache.policy == "full") {
      cache_ = model.new_cache(context + steps);
    } else {
      seq_ = std::make_unique<CachedSequence>(model, o.cache, context, steps);
    }
    next_ = model.backend().alloc({1}, DType::I32);
  }
  // The prompt in, the greedy next token out.
  int32_t prefill(const std::vector<int32_t>& ids) {
    if (seq_) return host_argmax(seq_->prefill(ids));
    Tensor logits;
    for (int begin = 0; begin < int(ids.size()); begin += model_.max_chunk()) {
      const int n = std::min(model_.max_chunk(), int(ids.size()) - begin);
      std::vector<int32_t> chunk(ids.begin() + begin, ids.begin() + begin + n), pos(static_cast<size_t>(n));
      for (int i = 0; i < n; i++) pos[size_t(i)] = begin + i;
      logits = model_.forward(chunk, pos, cache_, begin + n == int(ids.size()) ? Logits::Last : Logits::None);
    }
    position_ = int(ids.size());
    const int32_t next = device_argmax(logits);
    if (o_.leank_mask) {
      Backend& b = model_.backend();
      attach_channel_mask(b, cache_, *o_.leank_mask, o_.leank, o_.leank.middle_capacity(cache_.capacity, false));
      demoter_ = std::make_unique<Demoter>(b, o_.leank);
      demoter_->demote(cache_, true);
      resize_full_region(b, cache_, std::min(cache_.capacity, std::max(cache_.max_length(), o_.leank.full_capacity())));
      b.synchronize();
    }
    return next;
  }
  int32_t step(int32_t id) {
    if (seq_) return host_argmax(seq_->step(id));
    const int32_t next = device_argmax(model_.forward({id}, {position_++}, cache_, Logits::Last));
    if (demoter_) {
      demoter_->demote(cache_, false);
      model_.backend().synchronize();
    }
    return next;
  }
  // K and V as the allocator counts them, by freeing them (the row's last use).
  std::pair<size_t, size_t> release_kv() {
    Backend& b = model_.backend();
    KVCache& cache = seq_ ? seq_->cache() : cache_;
    const size_t k = freed_bytes(b, cache.k) + freed_bytes(b, cache.pruned.k);
    const size_t v = freed_bytes(b, cache.v) + freed_bytes(b, cache.pruned.v);
    return {k, v};
  }
  size_t allocated_bytes() const { return seq_ ? seq_->allocated_bytes() : cache_.bytes(); }
  size_t kept_bytes() const {
    if (!seq_) {
      return size_t(position_) * kv_bytes_per_token(model_.config(), model_.backend().kv_dtype());
    }
    size_t total = 0;
    for (size_t b : seq_->kept_kv_bytes_per_layer()) total += b;
    return total;
  }
  double policy_seconds() const { return seq_ ? seq_->policy_seconds() : 0.0; }
  int compactions() const { return seq_ ? seq_->compactions() : 0; }

 private:
  int32_t device_argmax(const Tensor& logits) {
    model_.backend().argmax(logits, next_);
    int32_t id = 0;
    model_.backend().read(next_, &id, sizeof id);
    return id;
  }
  static int32_t host_argmax(const std::vector<float>& logits) {
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }

  Transformer& model_;
  const SpeedBenchOptions& o_;
  KVCache cache_;
  std::unique_ptr<Demoter> demoter_;
  std::unique_ptr<CachedSequence> seq_;
  Tensor next_;
  int position_ = 0;
};

}  // namespace

std::vector<SpeedRow> run_speed_bench(Transformer& model, const SpeedBenchOptions& o, double copy_bytes_per_s) {
  Backend& b = model.backend();
  const ModelConfig& c = model.config();
  const double weights = decode_weight_bytes(model);
  const double kv_per_token = double(kv_bytes_per_token(c, b.kv_dtype()));
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(0, c.vocab_size - 1);
  for (int context : o.contexts)
    if (context < 1) fail("bench: context lengths must be positive");
  if (o.prompt_repetitions < 1) fail("bench: prompt repetitions must be at least 1");
  // An untimed prompt of one chunk first: otherwise the first row's TTFT includes loading the
  // kernels (CUDA loads them, and cuBLAS picks its own, on first use) and growing the
  // workspaces, which the peers leave out of theirs too (HF's warms up before timing).
  if (!o.contexts.empty()) {
    const int warm = std::min(o.contexts.front(), model.max_chunk());
    Feeder feeder(model, o, warm);
    feeder.prefill(std::vector<int32_t>(size_t(warm), 0));
    b.synchronize();
  }
  std::vector<SpeedRow> rows;
  for (int context : o.contexts) {
    b.reset_peak();
    SpeedRow r;
    r.context = context;
    std::vector<int32_t> ids(static_cast<size_t>(context));
    for (int32_t& id : ids) id = token(rng);
    std::optional<Feeder> prompt;
    int32_t id = 0;
    for (int rep = 0; rep < o.prompt_repetitions; rep++) {
      prompt.reset();  // the last repetition's cache goes back before the next one's is made
      prompt.emplace(model, o, context);
      b.synchronize();
      auto t0 = Clock::now();
      id = prompt->prefill(ids);
      r.ttft_all_s.push_back(seconds_since(t0));
    }
    Feeder& feeder = *prompt;
    r.ttft_s = percentile(r.ttft_all_s, 50);
    r.prefill_tokens_per_s = context / r.ttft_s;
    r.kv_bytes = feeder.allocated_bytes();

    std::vector<double> step_s;
    double policy_before = 0;
    int compactions_before = 0;
    for (int step = 0; step < o.warmup_tokens + o.decode_tokens; step++) {
      if (step == o.warmup_tokens) {
        policy_before = feeder.policy_seconds();
        compactions_before = feeder.compactions();
      }
      auto t = Clock::now();
      id = feeder.step(id);
      if (step >= o.warmup_tokens) step_s.push_back(seconds_since(t));
    }
    r.decode_tokens_per_s = step_s.empty() ? 0 : 1.0 / mean(step_s);
    r.latency_ms_p50 = percentile(step_s, 50) * 1e3;
    r.latency_ms_p90 = percentile(step_s, 90) * 1e3;
    r.latency_ms_p99 = percentile(step_s, 99) * 1e3;
    r.kept_kv_bytes = feeder.kept_bytes();
    r.compactions = feeder.compactions() - compactions_before;
    if (!step_s.empty()) r.policy_fraction = (feeder.policy_seconds() - policy_before) / (mean(step_s) * step_s.size());
    r.peak_bytes = b.peak_allocated_bytes();
    std::tie(r.k_bytes_allocator, r.v_bytes_allocator) = feeder.release_kv();
    // The roofline reads what the step reads: every weight once and the KV the cache holds (with
    // LeanK, the K and V it holds after demotion, as the allocator counted them).
    const double mid_context = context + o.warmup_tokens + o.decode_tokens / 2.0;
    const double kv_read = o.leank_mask                ? double(r.k_bytes_allocator + r.v_bytes_allocator)
                           : o.cache.policy == "full" ? kv_per_token * mid_context
                                                      : double(r.kept_kv_bytes);
    r.bytes_per_token = weights + kv_read;
    r.roofline_tokens_per_s = copy_bytes_per_s / r.bytes_per_token;
    r.roofline_fraction = r.decode_tokens_per_s / r.roofline_tokens_per_s;
    rows.push_back(r);
  }
  return rows;
}

nlohmann::json to_json(const SpeedRow& r) {
  return {{"context", r.context},
          {"prefill_tokens_per_s", r.prefill_tokens_per_s},
          {"ttft_s", r.ttft_s},
          {"ttft_all_s", r.ttft_all_s},
          {"decode_tokens_per_s", r.decode_tokens_per_s},
          {"latency_ms_p50", r.latency_ms_p50},
          {"latency_ms_p90", r.latency_ms_p90},
          {"latency_ms_p99", r.latency_ms_p99},
          {"bytes_per_token", r.bytes_per_token},
          {"roofline_tokens_per_s", r.roofline_tokens_per_s},
          {"roofline_fraction", r.roofline_fraction},
          {"peak_bytes", r.peak_bytes},
          {"kv_bytes", r.kv_bytes},
          {"kept_kv_bytes", r.kept_kv_bytes},
          {"compactions", r.compactions},
          {"policy_fraction", r.policy_fraction},
          {"k_bytes_allocator", r.k_bytes_allocator},
          {"v_bytes_allocator", r.v_bytes_allocator}};
}

std::string markdown_table(const std::string& model_name, const std::string& backend, const std::vector<SpeedRow>& rows) {
  std::string s =
      "| model | backend | context | prefill tok/s | TTFT s | decode tok/s | p50 ms | p90 ms | p99 ms | % roofline | KV GiB "
      "| K GiB | V GiB | policy % | peak GiB |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  char buf[512];
  for (const SpeedRow& r : rows) {
    std::snprintf(buf, sizeof buf,
                  "| %s | %s | %d | %.0f | %.3f | %.1f | %.2f | %.2f | %.2f | %.1f%% | %.3f | %.3f | %.3f | %.2f%% | %.2f |\n",
                  model_name.c_str(), backend.c_str(), r.context, r.prefill_tokens_per_s, r.ttft_s,
                  r.decode_tokens_per_s, r.latency_ms_p50, r.latency_ms_p90, r.latency_ms_p99,
                  100 * r.roofline_fraction, double(r.kept_kv_bytes) / double(1 << 30),
                  double(r.k_bytes_allocator) / double(1 << 30), double(r.v_bytes_allocator) / double(1 << 30),
                  100 * r.policy_fraction, double(r.peak_bytes) / double(1 << 30));
    s += buf;
  }
  return s;
}

}  // namespace kvlab
