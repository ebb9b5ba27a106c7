#pragma once
// Passkey retrieval (landmark-attention style, as LaCache's niah/pred.py builds it): a number
// hidden at a chosen depth in repeated filler; the model must repeat it.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

class Tokenizer;
class Transformer;
struct CacheSpec;

struct PasskeyOptions {
  int context_tokens = 512;                          // prompt length to aim for
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};  // where the needle sits, 0 = start
  int samples_per_depth = 2;
  uint64_t seed = 0;
};

struct PasskeyPrompt {
  std::vector<int32_t> ids;
  int32_t passkey = 0;
  int answer_tokens = 0;  // tokens of the passkey's digits: what the model generates
};

// Builds the prompt text with as many filler sentences as fit in `context_tokens`.
PasskeyPrompt build_passkey_prompt(const Tokenizer& tok, int context_tokens, double depth, int32_t passkey);

// Runs every (depth, sample) cell under the cache spec; returns the metrics and per-sample rows.
nlohmann::json run_passkey(Transformer& model, const Tokenizer& tok, const PasskeyOptions& options,
                           const CacheSpec& cache);
nlohmann::json to_json(const PasskeyOptions& o);

}  // namespace kvlab
