#include "tasks/run_stats.h"

#include <sys/resource.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cache/cached_sequence.h"
#include "core/stats.h"
#include "model/generate.h"

namespace kvlab {

namespace {

void max_into(std::vector<size_t>& acc, const std::vector<size_t>& v) {
  acc.resize(std::max(acc.size(), v.size()), 0);
  for (size_t i = 0; i < v.size(); i++) acc[i] = std::max(acc[i], v[i]);
}

std::vector<size_t> minus(const std::vector<size_t>& a, const std::vector<size_t>& b) {
  std::vector<size_t> out(a.size());
  for (size_t i = 0; i < a.size(); i++) out[i] = a[i] - std::min(a[i], i < b.size() ? b[i] : 0);
  return out;
}

size_t sum(const std::vector<size_t>& v) { return std::accumulate(v.begin(), v.end(), size_t(0)); }

// K as the store counts it (LeanK's middle keeps fewer K channels), V the rest.
nlohmann::json split_kv(const std::vector<size_t>& per_layer, size_t total, const std::vector<size_t>& k_per_layer,
                        size_t k_total) {
  return {{"k_bytes", k_total},
          {"v_bytes", total - std::min(total, k_total)},
          {"kv_bytes", total},
          {"k_bytes_per_layer", k_per_layer},
          {"v_bytes_per_layer", minus(per_layer, k_per_layer)}};
}

}  // namespace

size_t RunStats::kv_bytes(const CachedSequence& seq) { return sum(seq.kept_kv_bytes_per_layer()); }

void RunStats::sample_kv(const CachedSequence& seq) {
  std::vector<size_t> per_layer = seq.kept_kv_bytes_per_layer(), k = seq.kept_k_bytes_per_layer();
  max_into(peak_per_layer_, per_layer);
  max_into(peak_k_per_layer_, k);
  peak_total_ = std::max(peak_total_, sum(per_layer));
  peak_k_total_ = std::max(peak_k_total_, sum(k));
}

void RunStats::end_sequence(const CachedSequence& seq) {
  seq.finish();
  sample_kv(seq);
  std::vector<size_t> per_layer = seq.kept_kv_bytes_per_layer(), k = seq.kept_k_bytes_per_layer();
  max_into(end_per_layer_, per_layer);
  max_into(end_k_per_layer_, k);
  end_total_ = std::max(end_total_, sum(per_layer));
  end_k_total_ = std::max(end_k_total_, sum(k));
  allocated_peak_ = std::max(allocated_peak_, seq.allocated_bytes());
  policy_s_ += seq.policy_seconds();
  compactions_ += seq.compactions();
}

void RunStats::add_prefill(double seconds, size_t prompt_tokens) {
  prefill_s_.push_back(seconds);
  prefill_tps_.push_back(seconds > 0 ? double(prompt_tokens) / seconds : 0.0);
}

void RunStats::add_token(double seconds) { token_s_.push_back(seconds); }

void RunStats::add_generation(const GenerateResult& r, size_t prompt_tokens) {
  add_prefill(r.prefill_seconds, prompt_tokens);
  token_s_.insert(token_s_.end(), r.token_seconds.begin(), r.token_seconds.end());
}

nlohmann::json RunStats::to_json() const {
  nlohmann::json peak = split_kv(peak_per_layer_, peak_total_, peak_k_per_layer_, peak_k_total_),
                 end = split_kv(end_per_layer_, end_total_, end_k_per_layer_, end_k_total_);
  return {{"ttft_s_mean", mean(prefill_s_)},
          {"ttft_s_p50", percentile(prefill_s_, 50)},
          {"prefill_tokens_per_s_mean", mean(prefill_tps_)},
          {"decode_tokens", token_s_.size()},
          {"decode_tokens_per_s", token_s_.empty() ? 0.0 : 1.0 / mean(token_s_)},
          {"token_latency_s_p50", percentile(token_s_, 50)},
          {"token_latency_s_p99", percentile(token_s_, 99)},
          {"kv_cache",
           {{"peak", peak},
            {"end", end},
            {"allocated_bytes_peak", allocated_peak_},
            {"compactions", compactions_},
            {"policy_s_total", policy_s_},
            {"sampled", "kept slots after the prompt's policy call and after every later token; peak = max over "
                        "samples, end = max over sequence ends; allocated = the store's capacity"}}},
          {"host_memory_peak_bytes", peak_host_memory_bytes()}};
}

size_t peak_host_memory_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return size_t(u.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace kvlab
