#pragma once
// One sequence on a KV store governed by a cache policy: feeds tokens through the model,
// asks the policy what stays, compacts on the backend, and keeps the host's record of which
// original token positions each (layer, KV head) holds.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/policy.h"
#include "leank/demotion.h"
#include "model/transformer.h"

namespace kvlab {

class CachedSequence;

constexpr int kStreamingPrefillChunk = 512;

struct CacheSpec {
  std::string policy = "full";
  std::string budget;                                  // tokens | fraction of context | bytes
  nlohmann::json params = nlohmann::json::object();    // the policy's parameters
  // Decode steps between policy calls; 0 = auto: budget / 32 within [1, 64], so the store
  // overshoots the budget by at most ~3% between calls while each call's fixed cost (reading
  // scores, uploading the plan, launching the moves) is shared by many steps.
  int interval = 0;
  // false: the whole prompt goes in, then the policy runs once (LongBench/NIAH protocol);
  // true: the policy runs after every prefill chunk, so memory never exceeds budget + chunk.
  bool streaming_prefill = false;
  int chunk = 0;  // prefill chunk; 0: kStreamingPrefillChunk with streaming prefill, else the model's
  // LeanK: a channel mask file (kvlab-leank mask) pruning the K of the middle region; empty = none.
  std::string channel_mask;
  LeanKWindow leank;
  // --dump-cache: called with the sequence after the prompt's policy call ("prefill"), every
  // `snapshot_every` decode steps ("step N") and when the sequence is finished ("end"); the
  // observer takes snapshot(when) only of what it records.
  std::function<void(const CachedSequence& seq, const std::string& when)> on_snapshot;
  int snapshot_every = 0;
};

nlohmann::json to_json(const CacheSpec& spec);
// The decode steps between policy calls that `interval` (0 = auto) means at `budget` tokens.
int resolve_interval(int interval, int budget);

class CachedSequence {
 public:
  // Sizes the store for `prompt_tokens` + `max_new_tokens` under the policy; budget
  // fractions are of that context. Throws Error for an impossible spec.
  CachedSequence(Transformer& model, const CacheSpec& spec, int prompt_tokens, int max_new_tokens);

  // Feeds the prompt; returns the logits after its last token. With `all_logits`, also every
  // position's logits, [prompt, vocab].
  std::vector<float> prefill(const std::vector<int32_t>& ids, std::vector<float>* all_logits = nullptr);
  // Feeds one token; returns its logits.
  std::vector<float> step(int32_t id);

  const CachePolicy& policy() const { return *policy_; }
  int budget() const { return budget_; }
  int interval() const { return spec_.interval; }  // as resolved (never 0)
  int capacity() const { return cache_.capacity; }
  int64_t tokens_seen() const { return tokens_seen_; }
  // Original positions of the kept slots of (layer, head), in slot order.
  const std::vector<int32_t>& kept(int layer, int head) const;
  // K and V bytes held now, per layer (what is kept, not what is allocated); K alone, V alone.
  std::vector<size_t> kept_kv_bytes_per_layer() const;
  std::vector<size_t> kept_k_bytes_per_layer() const { return kept_bytes_per_layer(true, false); }
  std::vector<size_t> kept_v_bytes_per_layer() const { return kept_bytes_per_layer(false, true); }
  size_t allocated_bytes() const { return cache_.bytes(); }
  const KVCache& cache() const { return cache_; }
  KVCache& cache() { return cache_; }  // e.g. to free K and V once the sequence is done
  // {"when", "tokens_seen", "policy", "layers": [[positions of head 0], [head 1], ...]} for
  // --dump-cache.
  nlohmann::json snapshot(const std::string& when) const;
  // The sequence is done: the spec's observer gets the "end" snapshot.
  void finish() const;
  // Wall time in policy calls (reading scores, selecting, compacting), decided or not, and
  // how many of them changed the store.
  double policy_seconds() const { return policy_seconds_; }
  int compactions() const { return compactions_; }

 private:
  Tensor feed(const std::vector<int32_t>& ids, Logits logits, int score_first_query);
  std::vector<size_t> kept_bytes_per_layer(bool k, bool v) const;
  void apply_policy(CachePhase phase);
  void demote(bool after_prompt);  // LeanK

  Transformer& model_;
  std::unique_ptr<CachePolicy> policy_;
  CacheSpec spec_;
  int budget_ = 0;
  int prompt_tokens_ = 0;
  int decode_capacity_ = 0;  // slots decoding needs under the policy (0: the store's, unbounded)
  KVCache cache_;
  std::vector<std::vector<int32_t>> positions_;  // per (layer * kv_heads + head)
  int64_t tokens_seen_ = 0;
  int64_t decode_steps_ = 0;
  Tensor keep_, count_, shift_;  // staging for compaction plans
  std::vector<float> scores_;    // the scores a policy call reads, kept for the next call
  std::vector<float> region_scores_[2];  // with a middle: each region's, before scores_ joins them
  std::unique_ptr<Demoter> demoter_;  // LeanK, when a channel mask is given
  double policy_seconds_ = 0;
  int compactions_ = 0;
};

}  // namespace kvlab
