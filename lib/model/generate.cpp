#include "model/generate.h"

#include <algorithm>
#include <chrono>

#include "cache/cached_sequence.h"

namespace kvlab {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
int32_t argmax(const std::vector<float>& row) { return int32_t(std::max_element(row.begin(), row.end()) - row.begin()); }
}  // namespace

GenerateResult generate_greedy(CachedSequence& seq, const std::vector<int32_t>& prompt, const GenerateOptions& options) {
  GenerateResult r;
  auto t0 = Clock::now();
  std::vector<float> last = seq.prefill(prompt, options.keep_logits ? &r.logits : nullptr);
  r.prefill_seconds = seconds_since(t0);
  if (options.on_step) options.on_step(0);
  for (int step = 0; step < options.max_new_tokens; step++) {
    const int32_t next = argmax(last);
    r.tokens.push_back(next);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) break;
    if (step + 1 == options.max_new_tokens) break;
    auto t = Clock::now();
    last = seq.step(next);
    r.token_seconds.push_back(seconds_since(t));
    if (options.on_step) options.on_step(step + 1);
    if (options.keep_logits) r.logits.insert(r.logits.end(), last.begin(), last.end());
  }
  return r;
}

}  // namespace kvlab
