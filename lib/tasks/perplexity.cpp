#include "tasks/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cache/budget.h"
#include "cache/cached_sequence.h"
#include "cache/registry.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "model/tokenizer.h"
#include "model/transformer.h"
#include "tasks/run_stats.h"
#include "tasks/task.h"
#include "tasks/text_file.h"

namespace kvlab {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double ppl(double nll_sum, size_t n) { return n ? std::exp(nll_sum / double(n)) : 0.0; }
}  // namespace

double token_nll(const std::vector<float>& logits, int32_t target) {
  KVLAB_ASSERT(target >= 0 && size_t(target) < logits.size());
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - top);
  return top + std::log(sum) - double(logits[size_t(target)]);
}

StreamingNll streaming_nll(Transformer& model, const CacheSpec& cache, const std::vector<int32_t>& ids,
                           RunStats& stats) {
  if (ids.size() < 2) fail("perplexity: the text has fewer than 2 tokens");
  StreamingNll s;
  CachedSequence seq(model, cache, 1, int(ids.size()) - 1);
  auto t0 = Clock::now();
  std::vector<float> logits = seq.prefill({ids[0]});
  stats.add_prefill(seconds_since(t0), 1);
  for (size_t i = 1;; i++) {
    s.nll.push_back(token_nll(logits, ids[i]));
    s.kv_bytes.push_back(RunStats::kv_bytes(seq));
    stats.sample_kv(seq);
    if (i + 1 == ids.size() || interrupted()) break;  // the last token predicts nothing we can score
    auto t = Clock::now();
    logits = seq.step(ids[i]);
    stats.add_token(seconds_since(t));
  }
  stats.end_sequence(seq);
  return s;
}

nlohmann::json perplexity_windows(const StreamingNll& s, int window) {
  nlohmann::json rows = nlohmann::json::array();
  for (size_t begin = 0; begin < s.nll.size(); begin += size_t(window)) {
    const size_t end = std::min(s.nll.size(), begin + size_t(window));
    double sum = 0;
    for (size_t i = begin; i < end; i++) sum += s.nll[i];
    // Prediction i is of token i + 1.
    rows.push_back({{"first_token", begin + 1},
                    {"tokens", end - begin},
                    {"ppl", ppl(sum, end - begin)},
                    {"kv_bytes_kept", s.kv_bytes[end - 1]}});
  }
  return rows;
}

namespace {

// Enough of the file's start for `max_tokens` tokens (all of it for 0), cut at a line end so the
// kept tokens are those of the whole text.
std::vector<int32_t> text_tokens(const Tokenizer& tok, const std::string& text, int max_tokens) {
  for (size_t bytes = size_t(max_tokens) * 8;; bytes *= 2) {
    if (max_tokens == 0 || bytes >= text.size()) {
      std::vector<int32_t> ids = tok.encode(text, true);
      if (max_tokens > 0 && int(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
      return ids;
    }
    const size_t cut = text.rfind('\n', bytes);
    if (cut == std::string::npos || cut == 0) continue;
    std::vector<int32_t> ids = tok.encode(std::string_view(text).substr(0, cut + 1), true);
    if (int(ids.size()) > max_tokens + 4) {  // the prefix's last tokens may merge differently in the whole
      ids.resize(size_t(max_tokens));
      return ids;
    }
  }
}

// Tokens the store holds at once: with a budget and a policy that evicts while decoding, the
// kept tokens plus those between policy calls; otherwise the whole text.
int held_tokens(const TaskSetup& setup, int tokens) {
  const CacheSpec& c = setup.cache;
  if (c.budget.empty()) return tokens;
  int budget = resolve_budget(c.budget, tokens, setup.kv_bytes_per_token);
  auto policy = make_policy(c.policy, c.params, setup.model.num_layers, setup.model.num_kv_heads, budget);
  if (policy->max_kept_tokens() == 0 || !policy->evicts_during_decode()) return tokens;
  return std::min(tokens, policy->max_kept_tokens() + resolve_interval(c.interval, budget) + 1);
}

PreparedTask prepare_perplexity(const nlohmann::json& j, const TaskSetup& setup) {
  const std::string path = j["data"].get<std::string>();
  const int max_tokens = j["max_tokens"].get<int>(), window = j["window"].get<int>();
  std::vector<int32_t> ids = text_tokens(setup.tokenizer, read_text_file(path, "perplexity text"), max_tokens);
  if (ids.size() < 2)
    fail("perplexity: needs at least 2 tokens (" + path + " with --max-tokens " + std::to_string(max_tokens) + ")");
  PreparedTask t;
  t.config = j;
  t.data_files = {path};
  t.config["tokens"] = ids.size();
  t.context_tokens = held_tokens(setup, int(ids.size()));
  t.all_logits = true;
  t.run = [ids = std::move(ids), window, &cache = setup.cache](Transformer& model) {
    RunStats stats;
    StreamingNll s = streaming_nll(model, cache, ids, stats);
    double sum = 0;
    for (double x : s.nll) sum += x;
    const int trained = model.config().context_window();
    nlohmann::json m = {{"metric", "perplexity"},
                        {"ppl", ppl(sum, s.nll.size())},
                        {"nll_mean", sum / double(s.nll.size())},
                        {"tokens", ids.size()},
                        {"predicted_tokens", s.nll.size()},
                        {"window", window},
                        {"trained_context", trained},
                        {"tokens_past_trained_context", std::max<int64_t>(0, int64_t(ids.size()) - trained)}};
    m.update(stats.to_json());
    m["windows"] = perplexity_windows(s, window);
    char line[200];
    std::snprintf(line, sizeof line,
                  "perplexity: %.3f over %zu predicted tokens (windows of %d: first %.3f, last %.3f)",
                  m["ppl"].get<double>(), s.nll.size(), window, m["windows"].front()["ppl"].get<double>(),
                  m["windows"].back()["ppl"].get<double>());
    return TaskResult{m, line};
  };
  return t;
}

}  // namespace

extern const TaskInfo kPerplexityTask{
    "perplexity",
    "streaming perplexity: teacher-forced NLL over a long text, token by token through the (bounded) cache",
    "No prompt and no generation: the first --max-tokens tokens of --data (tokenized with the tokenizer's special "
    "prefix, e.g. <|begin_of_text|>) are fed one at a time from position 0 (StreamingLLM's eval_long_ppl protocol): "
    "token 0 as a one-token prefill, every later token through a decode step, the cache policy applied as in "
    "generation. NLL of token i+1 is taken from the logits after token i; PPL = exp(mean NLL) overall and per window "
    "of --window predictions, each with the KV bytes kept at its end, so drift and memory over length are visible. "
    "The text may run past the cache budget and the model's trained context (reported). With the full cache the "
    "NLLs equal those of one forward pass over the text. Deterministic: no seed.",
    {{"data", TaskOption::Path, "datasets/text/tinyshakespeare.txt", "text file to score (UTF-8)", -1e300, 1e300, {}},
     {"max_tokens", TaskOption::Int, 4096, "tokens of the text to feed (0: all of it)", 0, 1 << 30, {}},
     {"window", TaskOption::Int, 256, "predictions per reported window", 1, 1 << 30, {}}},
    prepare_perplexity};

}  // namespace kvlab
