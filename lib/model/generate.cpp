#include "model/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace kvlab {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int32_t argmax_on_host(const std::vector<float>& row) {
  return int32_t(std::max_element(row.begin(), row.end()) - row.begin());
}
}  // namespace

GenerateResult generate_greedy(Transformer& model, KVCache& cache, const std::vector<int32_t>& prompt,
                               const GenerateOptions& options, int32_t start_position) {
  if (prompt.empty()) fail("the prompt is empty");
  Backend& b = model.backend();
  const int vocab = model.config().vocab_size;
  const int chunk = options.chunk > 0 ? std::min(options.chunk, model.max_chunk()) : model.max_chunk();
  GenerateResult r;
  if (options.keep_logits) r.logits.reserve((prompt.size() + size_t(options.max_new_tokens)) * size_t(vocab));

  auto t0 = Clock::now();
  std::vector<float> last;
  for (size_t begin = 0; begin < prompt.size(); begin += size_t(chunk)) {
    size_t n = std::min(prompt.size() - begin, size_t(chunk));
    std::vector<int32_t> ids(prompt.begin() + long(begin), prompt.begin() + long(begin + n));
    std::vector<int32_t> pos(n);
    for (size_t i = 0; i < n; i++) pos[i] = start_position + int32_t(begin + i);
    const bool final_chunk = begin + n == prompt.size();
    Logits mode = options.keep_logits ? Logits::All : (final_chunk ? Logits::Last : Logits::None);
    Tensor logits = model.forward(ids, pos, cache, mode);
    if (options.keep_logits) {
      std::vector<float> chunk_logits = b.to_host_f32(logits);
      r.logits.insert(r.logits.end(), chunk_logits.begin(), chunk_logits.end());
      if (final_chunk) last.assign(chunk_logits.end() - vocab, chunk_logits.end());
    } else if (final_chunk) {
      last = b.to_host_f32(logits);
    }
  }
  r.prefill_seconds = seconds_since(t0);

  int32_t position = start_position + int32_t(prompt.size());
  for (int step = 0; step < options.max_new_tokens; step++) {
    int32_t next = argmax_on_host(last);
    r.tokens.push_back(next);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) break;
    if (step + 1 == options.max_new_tokens) break;
    auto t = Clock::now();
    last = b.to_host_f32(model.forward({next}, {position++}, cache, Logits::Last));
    r.token_seconds.push_back(seconds_since(t));
    if (options.keep_logits) r.logits.insert(r.logits.end(), last.begin(), last.end());
  }
  return r;
}

}  // namespace kvlab
