#pragma once
// Prefill (in chunks) and greedy decoding over a KV cache, with per-token timing.
#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace kvlab {

struct GenerateOptions {
  int max_new_tokens = 32;
  std::vector<int32_t> stop_ids;    // decoding ends after emitting one of these
  bool keep_logits = false;  // logits at every fed position, prompt and generated (dumps, goldens)
  int chunk = 0;                    // prefill chunk; 0 = the model's max_chunk
};

struct GenerateResult {
  std::vector<int32_t> tokens;                      // generated ids (stop id included)
  std::vector<float> logits;                        // [fed positions, vocab] when asked for
  double prefill_seconds = 0;                       // prompt in, first token's logits out
  std::vector<double> token_seconds;                // each decode step after the first token
};

// Feeds `prompt` at positions [start_position, ...) into `cache`, then decodes greedily.
GenerateResult generate_greedy(Transformer& model, KVCache& cache, const std::vector<int32_t>& prompt,
                               const GenerateOptions& options, int32_t start_position = 0);

}  // namespace kvlab
