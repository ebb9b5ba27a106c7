#pragma once
// Greedy decoding over a cached sequence, with per-token timing.
#include <cstdint>
#include <functional>
#include <vector>

namespace kvlab {

class CachedSequence;

struct GenerateOptions {
  int max_new_tokens = 32;
  std::vector<int32_t> stop_ids;  // decoding ends after emitting one of these
  bool keep_logits = false;       // logits at every fed position, prompt and generated (dumps, goldens)
  std::function<void(int)> on_step;  // called after prefill (0) and after each decode step (1, 2, ...)
};

struct GenerateResult {
  std::vector<int32_t> tokens;        // generated ids (stop id included)
  std::vector<float> logits;          // [fed positions, vocab] when asked for
  double prefill_seconds = 0;         // prompt in, first token's logits out
  std::vector<double> token_seconds;  // each decode step after the first token
};

// Prefills `prompt` into `seq` (a fresh sequence), then decodes greedily.
GenerateResult generate_greedy(CachedSequence& seq, const std::vector<int32_t>& prompt, const GenerateOptions& options);

}  // namespace kvlab
