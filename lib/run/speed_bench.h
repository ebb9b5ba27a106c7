#pragma once
// Prefill and decode speed at given context lengths, as a fraction of the bandwidth roofline
// measured in the same run (llama-bench's pp/tg with depth, plus latency percentiles).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/cached_sequence.h"
#include "leank/demotion.h"
#include "leank/mask.h"

namespace kvlab {

class Transformer;
struct ModelConfig;

struct SpeedBenchOptions {
  std::vector<int> contexts = {1024, 8192, 32768};
  int decode_tokens = 128;  // timed decode steps after the context is in
  int warmup_tokens = 8;    // untimed decode steps first
  // Prompts timed per context, each into a fresh cache; TTFT is their median, and the last one's
  // cache is decoded. Under a power cap a prompt after idle starts at the boost clock while
  // back-to-back prompts start capped, so one prompt and the median of several can differ.
  int prompt_repetitions = 1;
  uint64_t seed = 0;        // random prompt ids
  // Not "full": the sequence runs under this policy (CachedSequence), which adds a host copy of
  // each step's logits; the row then records what the policy keeps and the time its calls take.
  CacheSpec cache;
  // LeanK (with the full cache): after the prompt (attended in full) its middle moves to a
  // channel-pruned region and decoding demotes as CachedSequence does; the demotions count in
  // the decode times.
  std::optional<ChannelMask> leank_mask;
  LeanKWindow leank;
};

struct SpeedRow {
  int context = 0;
  double prefill_tokens_per_s = 0;
  double ttft_s = 0;            // the whole context in, first token's logits out (median over prompts)
  std::vector<double> ttft_all_s;  // every timed prompt, in order
  double decode_tokens_per_s = 0;
  double latency_ms_p50 = 0, latency_ms_p90 = 0, latency_ms_p99 = 0;
  double bytes_per_token = 0;   // weights + KV the decode step must read (mid-run context)
  double roofline_tokens_per_s = 0;
  double roofline_fraction = 0;
  size_t peak_bytes = 0;        // most bytes held by the backend during this row
  size_t kv_bytes = 0;          // the KV cache as allocated (after the prompt's demotion with LeanK)
  size_t kept_kv_bytes = 0;     // what the policy keeps after the last step (= kv in use for full)
  int compactions = 0;          // policy calls that changed the store during the timed steps
  double policy_fraction = 0;   // share of the timed decode time spent in policy calls
  // K and V of the cache as the backend's allocator counts them: what freeing them gives back
  // (the full cache, with or without LeanK; 0 under a token policy).
  size_t k_bytes_allocator = 0, v_bytes_allocator = 0;
};

// Weight bytes a decode step reads: every matrix once, one embedding row.
double decode_weight_bytes(const Transformer& model);
// Channel importance with a spread of per-head scales, so that a mask made from it at sparsity
// s keeps s of the channels on average over heads of different counts (uniform importance would
// round nearly every head the same way): for benchmarks on random weights.
ChannelImportance synthetic_importance(const ModelConfig& c, uint64_t seed);
std::vector<SpeedRow> run_speed_bench(Transformer& model, const SpeedBenchOptions& options, double copy_bytes_per_s);
nlohmann::json to_json(const SpeedRow& r);
std::string markdown_table(const std::string& model_name, const std::string& backend, const std::vector<SpeedRow>& rows);

}  // namespace kvlab
