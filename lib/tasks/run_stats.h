#pragma once
// What every task records about the sequences it runs, beside its score: time to first token,
// decode speed and per-token latency, K and V bytes the cache keeps (per layer and in total, at
// the peak and at the end of sequences), the store's allocation, and the process's peak memory.
#include <cstddef>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

class CachedSequence;
struct GenerateResult;

class RunStats {
 public:
  // K/V bytes kept now; call after the prompt is in and after each later token.
  void sample_kv(const CachedSequence& seq);
  // A sequence is done: its final K/V bytes, allocation and compaction time.
  void end_sequence(const CachedSequence& seq);
  void add_prefill(double seconds, size_t prompt_tokens);
  void add_token(double seconds);
  void add_generation(const GenerateResult& r, size_t prompt_tokens);  // add_prefill + add_token each

  // Bytes kept now, K plus V over all layers.
  static size_t kv_bytes(const CachedSequence& seq);

  // {"ttft_s_mean", ..., "kv_cache": {...}, "host_memory_peak_bytes"}: merged into a task's metrics.
  nlohmann::json to_json() const;

 private:
  std::vector<double> prefill_s_, prefill_tps_, token_s_;
  // Elementwise max over samples / sequence ends, of K+V and of K alone (they differ under LeanK).
  std::vector<size_t> peak_per_layer_, end_per_layer_, peak_k_per_layer_, end_k_per_layer_;
  size_t peak_total_ = 0, end_total_ = 0, peak_k_total_ = 0, end_k_total_ = 0, allocated_peak_ = 0;
  double policy_s_ = 0;  // in policy calls, compaction included
  long compactions_ = 0;
};

// Peak resident memory of this process so far (getrusage ru_maxrss).
size_t peak_host_memory_bytes();

}  // namespace kvlab
