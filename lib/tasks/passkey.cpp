#include "tasks/passkey.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "cache/cached_sequence.h"
#include "core/error.h"
#include "core/stats.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace kvlab {

namespace {
const char* kIntro =
    "There is important information hidden in a lot of irrelevant text. Find it and memorize it. "
    "You will be quizzed on this hidden information.";
const char* kFiller = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
const char* kQuestion = "What is the pass key? The pass key is";

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; i++) out += s;
  return out;
}

std::string passkey_text(int prefix_reps, int suffix_reps, int32_t key) {
  std::string k = std::to_string(key);
  return std::string(kIntro) + "\n" + repeat(kFiller, prefix_reps) + "\nThe pass key is " + k + ". Remember it. " +
         k + " is the pass key.\n" + repeat(kFiller, suffix_reps) + "\n" + kQuestion;
}
}  // namespace

PasskeyPrompt build_passkey_prompt(const Tokenizer& tok, int context_tokens, double depth, int32_t passkey) {
  if (depth < 0 || depth > 1) fail("passkey depth " + std::to_string(depth) + " is outside [0, 1]");
  const int fixed = int(tok.encode(passkey_text(0, 0, passkey), true).size());
  const int per_rep = std::max<int>(1, int(tok.encode(kFiller).size()));
  if (fixed > context_tokens)
    fail("passkey: --context " + std::to_string(context_tokens) + " is shorter than the bare prompt (" +
         std::to_string(fixed) + " tokens)");
  int reps = (context_tokens - fixed) / per_rep;
  // Token counts of joined filler differ slightly from per_rep * reps; trim until it fits.
  PasskeyPrompt p;
  p.passkey = passkey;
  p.answer_tokens = int(tok.encode(std::to_string(passkey)).size());
  for (; reps >= 0; reps--) {
    int prefix = int(std::lround(depth * reps));
    p.ids = tok.encode(passkey_text(prefix, reps - prefix, passkey), true);
    if (int(p.ids.size()) <= context_tokens) break;
  }
  return p;
}

nlohmann::json to_json(const PasskeyOptions& o) {
  return {{"context_tokens", o.context_tokens},
          {"depths", o.depths},
          {"samples_per_depth", o.samples_per_depth},
          {"seed", o.seed}};
}

nlohmann::json run_passkey(Transformer& model, const Tokenizer& tok, const PasskeyOptions& options,
                           const CacheSpec& cache) {
  if (options.samples_per_depth < 1) fail("passkey: --samples must be at least 1");
  if (options.context_tokens > model.config().max_position_embeddings)
    fail("passkey: --context " + std::to_string(options.context_tokens) + " exceeds the model's " +
         "max_position_embeddings (" + std::to_string(model.config().max_position_embeddings) + ")");
  nlohmann::json samples = nlohmann::json::array();
  std::map<double, std::pair<int, int>> by_depth;  // depth -> (correct, total)
  std::vector<double> prefill_s, token_s, prefill_tps;
  size_t peak_kept_bytes = 0, allocated_bytes = 0;
  double compaction_s = 0;
  std::vector<size_t> kept_per_layer;
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int32_t> key_dist(1, 99999);
  int correct = 0, total = 0;
  for (double depth : options.depths) {
    for (int s = 0; s < options.samples_per_depth; s++) {
      PasskeyPrompt p = build_passkey_prompt(tok, options.context_tokens, depth, key_dist(rng));
      CachedSequence seq(model, cache, int(p.ids.size()), p.answer_tokens);
      GenerateOptions g;
      g.max_new_tokens = p.answer_tokens;
      GenerateResult r = generate_greedy(seq, p.ids, g);
      kept_per_layer = seq.kept_kv_bytes_per_layer();
      size_t kept_bytes = 0;
      for (size_t b : kept_per_layer) kept_bytes += b;
      peak_kept_bytes = std::max(peak_kept_bytes, kept_bytes);
      allocated_bytes = std::max(allocated_bytes, seq.allocated_bytes());
      compaction_s += seq.compaction_seconds();
      std::string answer = tok.decode(r.tokens);
      bool ok = answer.find(std::to_string(p.passkey)) != std::string::npos;
      correct += ok;
      total++;
      by_depth[depth].first += ok;
      by_depth[depth].second++;
      prefill_s.push_back(r.prefill_seconds);
      prefill_tps.push_back(double(p.ids.size()) / r.prefill_seconds);
      token_s.insert(token_s.end(), r.token_seconds.begin(), r.token_seconds.end());
      samples.push_back({{"depth", depth},
                         {"prompt_tokens", p.ids.size()},
                         {"passkey", p.passkey},
                         {"answer", answer},
                         {"correct", ok},
                         {"kv_bytes_kept_at_end", kept_bytes}});
    }
  }
  nlohmann::json depth_rows = nlohmann::json::array();
  for (auto& [depth, ct] : by_depth)
    depth_rows.push_back({{"depth", depth}, {"accuracy", double(ct.first) / ct.second}, {"samples", ct.second}});
  return {{"accuracy", double(correct) / total},
          {"samples", total},
          {"by_depth", depth_rows},
          {"ttft_s_mean", mean(prefill_s)},
          {"prefill_tokens_per_s_mean", mean(prefill_tps)},
          {"decode_tokens_per_s", token_s.empty() ? 0.0 : 1.0 / mean(token_s)},
          {"token_latency_s_p50", percentile(token_s, 50)},
          {"token_latency_s_p99", percentile(token_s, 99)},
          {"kv_bytes_kept_peak", peak_kept_bytes},
          {"kv_bytes_kept_per_layer_last_sample", kept_per_layer},
          {"kv_bytes_allocated_peak", allocated_bytes},
          {"compaction_s_total", compaction_s},
          {"per_sample", samples}};
}

}  // namespace kvlab
