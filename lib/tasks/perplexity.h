#pragma once
// Streaming perplexity (docs/methods.md 4.4, StreamingLLM's eval_long_ppl): a long text is fed
// token by token through the (bounded) cache with teacher forcing, possibly past the cache and
// the model's trained context; the NLL of every next token is recorded.
#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

class Transformer;
class RunStats;
struct CacheSpec;

struct StreamingNll {
  std::vector<double> nll;         // nll[i]: -log p(ids[i + 1] | ids[0..i]) under the cache
  std::vector<size_t> kv_bytes;    // K+V bytes kept after feeding ids[i]
};

// Token 0 goes in as a one-token prefill (so the policy's prompt pass runs on it), every later
// token through step(): with the full cache this equals one forward pass over the whole text.
StreamingNll streaming_nll(Transformer& model, const CacheSpec& cache, const std::vector<int32_t>& ids,
                           RunStats& stats);

// -log softmax(logits)[target], in double.
double token_nll(const std::vector<float>& logits, int32_t target);

// Perplexity of every `window` consecutive predictions, with the KV bytes kept at the window's
// end: [{"first_token", "tokens", "ppl", "kv_bytes_kept"}, ...].
nlohmann::json perplexity_windows(const StreamingNll& s, int window);

}  // namespace kvlab
