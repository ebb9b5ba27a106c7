#include "tasks/passkey.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "cache/cached_sequence.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/transformer.h"
#include "tasks/run_stats.h"
#include "tasks/task.h"

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

void require_context_fits(int context_tokens, const ModelConfig& model) {
  if (context_tokens > model.context_window())
    fail("passkey: --context " + std::to_string(context_tokens) + " exceeds " + model.context_window_text());
}
}  // namespace

PasskeyPrompt build_passkey_prompt(const Tokenizer& tok, int context_tokens, double depth, int32_t passkey) {
  if (depth < 0 || depth > 1) fail("passkey depth " + std::to_string(depth) + " is outside [0, 1]");
  const int fixed = int(tok.encode(passkey_text(0, 0, passkey), true).size());
  const int per_rep = std::max<int>(1, int(tok.encode(kFiller).size()));
  if (fixed > context_tokens)
    fail("passkey: --context " + std::to_string(context_tokens) + " is shorter than the bare prompt (" +
         std::to_string(fixed) + " tokens)");
  // Joined filler tokenizes differently from per_rep * reps: start from the estimate, then take
  // the most repetitions whose prompt fits.
  PasskeyPrompt p;
  p.passkey = passkey;
  // The answer follows "The pass key is", so the model's first token carries the space.
  p.answer_tokens = int(tok.encode(" " + std::to_string(passkey)).size());
  auto prompt_with = [&](int reps) {
    int prefix = int(std::lround(depth * reps));
    return tok.encode(passkey_text(prefix, reps - prefix, passkey), true);
  };
  int reps = (context_tokens - fixed) / per_rep;
  p.ids = prompt_with(reps);
  while (int(p.ids.size()) > context_tokens && reps > 0) p.ids = prompt_with(--reps);
  for (;;) {
    std::vector<int32_t> longer = prompt_with(reps + 1);
    if (int(longer.size()) > context_tokens) break;
    p.ids = std::move(longer);
    reps++;
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
  require_context_fits(options.context_tokens, model.config());
  nlohmann::json samples = nlohmann::json::array();
  std::map<double, std::pair<int, int>> by_depth;  // depth -> (correct, total)
  RunStats stats;
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int32_t> key_dist(1, 99999);
  int correct = 0, total = 0;
  for (double depth : options.depths) {
    for (int s = 0; s < options.samples_per_depth; s++) {
      PasskeyPrompt p = build_passkey_prompt(tok, options.context_tokens, depth, key_dist(rng));
      CachedSequence seq(model, cache, int(p.ids.size()), p.answer_tokens);
      GenerateOptions g;
      g.max_new_tokens = p.answer_tokens;
      g.on_step = [&](int) { stats.sample_kv(seq); };
      GenerateResult r = generate_greedy(seq, p.ids, g);
      stats.add_generation(r, p.ids.size());
      stats.end_sequence(seq);
      std::string answer = tok.decode(r.tokens);
      bool ok = answer.find(std::to_string(p.passkey)) != std::string::npos;
      correct += ok;
      total++;
      by_depth[depth].first += ok;
      by_depth[depth].second++;
      samples.push_back({{"depth", depth},
                         {"prompt_tokens", p.ids.size()},
                         {"passkey", p.passkey},
                         {"answer", answer},
                         {"correct", ok},
                         {"kv_bytes_kept_at_end", RunStats::kv_bytes(seq)}});
      if (interrupted()) break;
    }
    if (interrupted()) break;
  }
  nlohmann::json depth_rows = nlohmann::json::array();
  for (auto& [depth, ct] : by_depth)
    depth_rows.push_back({{"depth", depth}, {"accuracy", double(ct.first) / ct.second}, {"samples", ct.second}});
  nlohmann::json metrics = {{"accuracy", double(correct) / total}, {"samples", total}, {"by_depth", depth_rows}};
  metrics.update(stats.to_json());
  metrics["per_sample"] = samples;
  return metrics;
}

namespace {

PreparedTask prepare_passkey(const nlohmann::json& o, const TaskSetup& setup) {
  PasskeyOptions options;
  options.context_tokens = o["context"].get<int>();
  options.depths = o["depths"].get<std::vector<double>>();
  options.samples_per_depth = o["samples"].get<int>();
  options.seed = o["seed"].get<uint64_t>();
  require_context_fits(options.context_tokens, setup.model);
  PreparedTask t;
  t.config = to_json(options);
  t.context_tokens = options.context_tokens;
  t.run = [options, &tok = setup.tokenizer, &cache = setup.cache](Transformer& model) {
    nlohmann::json m = run_passkey(model, tok, options, cache);
    char line[160];
    std::snprintf(line, sizeof line, "passkey: accuracy %.3f over %d samples (context %d tokens)",
                  m["accuracy"].get<double>(), m["samples"].get<int>(), options.context_tokens);
    return TaskResult{m, line};
  };
  return t;
}

}  // namespace

extern const TaskInfo kPasskeyTask{
    "passkey",
    "passkey retrieval: a number (up to 5 digits) hidden in repeated filler (landmark-attention style)",
    "Raw prompt (no chat template), as docs/methods.md 4.1 builds it: the instruction, filler sentences, \"The pass "
    "key is K. Remember it. K is the pass key.\" at the depth, more filler, then \"What is the pass key? The pass "
    "key is\"; as many filler repetitions as fit in --context tokens. Generates as many tokens as the digits of K "
    "take, greedily, without stopping at end-of-sequence. Correct when the decoded output contains K. K is uniform "
    "in [1, 99999] from std::mt19937_64(--seed), drawn depth by depth, sample by sample.",
    {{"context", TaskOption::Int, 512, "prompt length in tokens", 1, 1 << 24, {}},
     {"depths", TaskOption::FloatList, {0.0, 0.25, 0.5, 0.75, 1.0}, "needle depths as fractions of the filler, "
      "comma-separated (0 = start)", 0, 1, {}},
     {"samples", TaskOption::Int, 2, "samples per depth", 1, 1 << 20, {}},
     {"seed", TaskOption::Int, 0, "seed of the hidden numbers", 0, 9.2e18, {}}},
    prepare_passkey};

}  // namespace kvlab
