#include "cache/cached_sequence.h"

#include <algorithm>
#include <chrono>

#include "backend/pruned_region.h"
#include "cache/budget.h"
#include "cache/region_plan.h"
#include "cache/registry.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "leank/mask.h"
#include "model/memory_plan.h"

namespace kvlab {

nlohmann::json to_json(const CacheSpec& s) {
  nlohmann::json j = {{"policy", s.policy},
                      {"budget", s.budget},
                      {"params", s.params},
                      {"interval", s.interval == 0 ? nlohmann::json("auto") : nlohmann::json(s.interval)},
                      {"streaming_prefill", s.streaming_prefill},
                      {"chunk", s.chunk}};
  if (!s.channel_mask.empty())
    j["leank"] = {{"mask", s.channel_mask},
                  {"sink", s.leank.sink},
                  {"recent", s.leank.recent},
                  {"accumulate", s.leank.accumulate}};
  return j;
}

CachedSequence::CachedSequence(Transformer& model, const CacheSpec& spec, int prompt_tokens, int max_new_tokens)
    : model_(model), spec_(spec), prompt_tokens_(prompt_tokens) {
  keep_freed_host_memory();  // each policy call frees and allocates its lists again
  const ModelConfig& c = model.config();
  if (spec_.interval < 0) fail("cache interval must be at least 1 (or 0 for auto)");
  // Streaming prefill's protocol runs the policy every 512 tokens, whatever size of forward the
  // model takes fastest; the whole prompt goes in by the model's chunks.
  if (spec_.chunk <= 0) spec_.chunk = spec_.streaming_prefill ? kStreamingPrefillChunk : model.max_chunk();
  spec_.chunk = std::min(spec_.chunk, model.max_chunk());
  const int context = prompt_tokens + max_new_tokens;
  if (!spec_.budget.empty())
    budget_ = resolve_budget(spec_.budget, context, kv_bytes_per_token(c, model.backend().kv_dtype()));
  spec_.interval = resolve_interval(spec_.interval, budget_);
  policy_ = make_policy(spec_.policy, spec_.params, c.num_layers, c.num_kv_heads, budget_);
  if (spec_.streaming_prefill && policy_->score_need() == ScoreNeed::PromptWindow)
    fail("cache policy " + spec_.policy + " compresses the whole prompt once; it cannot run with streaming prefill");

  // Room for what the policy keeps plus what arrives before it runs again.
  const int kept = policy_->max_kept_tokens();
  const int decode_growth = policy_->evicts_during_decode() ? spec_.interval : max_new_tokens;
  int capacity;
  if (kept == 0) {
    capacity = context;
  } else if (spec_.streaming_prefill) {
    capacity = kept + std::max(spec_.chunk, decode_growth);
  } else {
    capacity = std::max(prompt_tokens, kept) + decode_growth;
  }
  if (kept > 0) decode_capacity_ = kept + decode_growth;
  cache_ = model.new_cache(capacity);
  int middle_capacity = 0;
  if (!spec_.channel_mask.empty()) {
    // LeanK sits under the token policy: the policy chooses over every kept token in age order,
    // whichever region holds it (apply_policy joins their scores and splits its choice).
    if (spec_.streaming_prefill) fail("a LeanK channel mask needs the whole prompt in (no --streaming-prefill)");
    const ChannelMask mask = read_mask(spec_.channel_mask, ModelFingerprint::of(c), "the model");
    if (policy_->renumbers_positions() && !mask.pair_closed())
      fail("cache policy " + spec_.policy +
           " re-rotates kept keys to their new index, which needs both channels of every RoPE pair (i, i + " +
           std::to_string(c.head_dim / 2) + ") kept or dropped together; make the mask with kvlab-leank mask --rope-pairs" +
           (spec_.policy == "streaming" ? " (or use --cache-param positions=original)" : ""));
    // A mask that prunes nothing (sparsity 0) leaves the cache exactly as it is.
    if (std::any_of(mask.keep.begin(), mask.keep.end(), [](int32_t k) { return k == 0; })) {
      // The middle receives only what the prompt's policy call kept, and what arrives after;
      // a policy may evict the sink, leaving more of its choice to the middle.
      const int max_tokens = kept > 0 ? std::min(capacity, kept + decode_growth) : capacity;
      attach_channel_mask(model.backend(), cache_, mask, spec_.leank,
                          spec_.leank.middle_capacity(max_tokens, kept > 0));
      middle_capacity = cache_.pruned.capacity;
      demoter_ = std::make_unique<Demoter>(model.backend(), spec_.leank);
    }
  }
  positions_.assign(size_t(c.num_layers * c.num_kv_heads), {});
  Backend& b = model.backend();
  if (policy_->score_need() != ScoreNeed::None) attach_scores(b, cache_);
  if (kept > 0) {
    // Plans of both regions go up together: counts [region, layer, head] and, for renumbering
    // policies over a middle, each region's index shifts [region, layer, head, 2].
    const int regions = middle_capacity > 0 ? 2 : 1;
    keep_ = b.alloc({int64_t(c.num_layers) * c.num_kv_heads * (capacity + middle_capacity)}, DType::I32);
    count_ = b.alloc({regions, c.num_layers, c.num_kv_heads}, DType::I32);
    if (middle_capacity > 0 && policy_->renumbers_positions())
      shift_ = b.alloc({regions, c.num_layers, c.num_kv_heads, 2}, DType::I32);
  }
}

int resolve_interval(int interval, int budget) {
  if (interval > 0) return interval;
  return std::clamp(budget / 32, 1, 64);
}

const std::vector<int32_t>& CachedSequence::kept(int layer, int head) const {
  return positions_[size_t(layer * model_.config().num_kv_heads + head)];
}

Tensor CachedSequence::feed(const std::vector<int32_t>& ids, Logits logits, int score_first_query) {
  const int n = int(ids.size());
  std::vector<int32_t> positions(ids.size());
  for (int i = 0; i < n; i++) positions[size_t(i)] = int32_t(tokens_seen_ + i);
  ForwardExtras extras;
  extras.score_first_query = score_first_query;
  if (policy_->renumbers_positions()) {
    // Keys sit at their slot index; every (layer, head) holds the same count under such policies.
    const int32_t length = int32_t(positions_[0].size());
    extras.rope_positions.resize(ids.size());
    for (int i = 0; i < n; i++) extras.rope_positions[size_t(i)] = length + i;
  }
  Tensor out = model_.forward(ids, positions, cache_, logits, extras);
  for (auto& p : positions_) p.insert(p.end(), positions.begin(), positions.end());
  tokens_seen_ += n;
  return out;
}

std::vector<float> CachedSequence::prefill(const std::vector<int32_t>& ids, std::vector<float>* all_logits) {
  if (ids.empty()) fail("the prompt is empty");
  if (tokens_seen_ != 0) fail("prefill on a sequence that already holds tokens", kExitInternal);
  Backend& b = model_.backend();
  const int total = int(ids.size());
  const int window_start = policy_->score_need() == ScoreNeed::PromptWindow ? total - policy_->score_window() : 0;
  std::vector<float> last;
  for (int begin = 0; begin < total; begin += spec_.chunk) {
    const int n = std::min(total - begin, spec_.chunk);
    const bool final_chunk = begin + n == total;
    std::vector<int32_t> chunk(ids.begin() + begin, ids.begin() + begin + n);
    int score_from = -1;
    if (policy_->score_need() == ScoreNeed::AllQueries) score_from = 0;
    if (policy_->score_need() == ScoreNeed::PromptWindow && window_start < begin + n)
      score_from = std::max(0, window_start - begin);
    Logits mode = all_logits ? Logits::All : (final_chunk ? Logits::Last : Logits::None);
    Tensor logits = feed(chunk, mode, score_from);
    if (all_logits) {
      std::vector<float> rows = b.to_host_f32(logits);
      all_logits->insert(all_logits->end(), rows.begin(), rows.end());
      if (final_chunk) last.assign(rows.end() - model_.config().vocab_size, rows.end());
    } else if (final_chunk) {
      last = b.to_host_f32(logits);
    }
    if (spec_.streaming_prefill || final_chunk) apply_policy(CachePhase::Prefill);
  }
  // The whole prompt went in; cut to the budget, the store shrinks to what decoding needs, so
  // the memory a policy saves is memory the allocator gets back.
  if (decode_capacity_ > 0 && cache_.capacity > decode_capacity_ && cache_.max_length() <= decode_capacity_) {
    resize_full_region(b, cache_, decode_capacity_);
    b.synchronize();
  }
  if (demoter_) demote(true);
  if (spec_.on_snapshot) spec_.on_snapshot(*this, "prefill");
  return last;
}

std::vector<float> CachedSequence::step(int32_t id) {
  const int score_from = policy_->score_need() == ScoreNeed::AllQueries ? 0 : -1;
  std::vector<float> logits = model_.backend().to_host_f32(feed({id}, Logits::Last, score_from));
  decode_steps_++;
  if (policy_->evicts_during_decode() && decode_steps_ % spec_.interval == 0) apply_policy(CachePhase::Decode);
  if (demoter_) demote(false);
  if (spec_.on_snapshot && spec_.snapshot_every > 0 && decode_steps_ % spec_.snapshot_every == 0)
    spec_.on_snapshot(*this, "step " + std::to_string(decode_steps_));
  return logits;
}

void CachedSequence::demote(bool after_prompt) {
  if (!demoter_->demote(cache_, after_prompt)) return;
  // Once the middle holds the old tokens the full region needs only sink + recent + accumulate
  // slots: reallocating it is where the allocator sees the saving.
  const int full = spec_.leank.full_capacity();
  if (cache_.capacity > full && cache_.max_length() <= full) {
    resize_full_region(model_.backend(), cache_, full);
    model_.backend().synchronize();
  }
}

namespace {
// Adds the scope's wall time to `total`, however the scope is left.
struct AddElapsed {
  double& total;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ~AddElapsed() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
};
}  // namespace

void CachedSequence::apply_policy(CachePhase phase) {
  if (policy_->max_kept_tokens() == 0) return;
  AddElapsed timer{policy_seconds_};
  const ModelConfig& c = model_.config();
  Backend& b = model_.backend();
  CacheState state;
  state.layers = c.num_layers;
  state.kv_heads = c.num_kv_heads;
  state.phase = phase;
  state.tokens_seen = tokens_seen_;
  state.positions = &positions_;
  state.capacity = cache_.capacity;
  ChannelPrunedKV& mid = cache_.pruned;
  if (policy_->score_need() != ScoreNeed::None) {
    // With LeanK's middle the policy ranks both regions' slots together, in age order.
    std::vector<float>& full = mid.empty() ? scores_ : region_scores_[0];
    full.resize(size_t(cache_.score.numel()));
    b.read(cache_.score, full.data(), full.size() * sizeof(float));
    if (!mid.empty()) {
      region_scores_[1].resize(size_t(mid.score.numel()));
      b.read(mid.score, region_scores_[1].data(), region_scores_[1].size() * sizeof(float));
      scores_in_age_order(full, cache_.capacity, cache_.host_length, region_scores_[1], mid, scores_);
      state.capacity = cache_.capacity + mid.capacity;
    }
    state.scores = &scores_;
  }
  std::optional<KeepPlan> plan = policy_->select(state);
  if (!plan) return;

  // With LeanK's middle the policy's choice splits into one plan per region (region_plan.h).
  const int heads = c.num_kv_heads;
  const size_t n_lh = plan->size();
  std::vector<const KeepPlan*> regions = {&*plan};
  RegionPlans split;
  if (!mid.empty()) {
    split = split_by_region(*plan, mid);
    regions = {&split.full, &split.middle};
    mid.host_front = split.front;
    b.write(mid.front, mid.host_front.data(), n_lh * sizeof(int32_t));
    if (!shift_.empty()) b.write(shift_, split.shift.data(), split.shift.size() * sizeof(int32_t));
  }
  const std::vector<int32_t>& shift = split.shift;

  // The plans go up as one write: per changed (region, layer), its heads' lists packed at the
  // width of its longest (one row when every head keeps the same slots, as LaCache and
  // StreamingLLM do), so a call uploads what is kept, not the store's capacity.
  std::vector<int32_t> packed, count(size_t(count_.numel()));
  struct Upload {
    int region, layer, rows, width;
    int64_t offset;  // in packed
  };
  std::vector<Upload> changed;
  for (int r = 0; r < int(regions.size()); r++) {
    const KeepPlan& region = *regions[size_t(r)];
    const std::vector<int32_t>& length = r == 0 ? cache_.host_length : mid.host_length;
    for (int l = 0; l < c.num_layers; l++) {
      bool unchanged = true;  // ascending and the same size: the identity
      bool shared = true;
      int width = 1;
      const std::vector<int32_t>& first = region[size_t(l * heads)];
      for (int h = 0; h < heads; h++) {
        const size_t lh = size_t(l * heads + h);
        const std::vector<int32_t>& slots = region[lh];
        count[size_t(r) * n_lh + lh] = int32_t(slots.size());
        width = std::max(width, int(slots.size()));
        unchanged = unchanged && int(slots.size()) == length[lh];
        shared = shared && slots == first;
      }
      // Renumbered keys turn when the region before them shrank, even where all are kept.
      if (unchanged && !shift_.empty())
        for (int h = 0; h < heads; h++)
          unchanged = unchanged && shift[2 * (size_t(r) * n_lh + size_t(l * heads + h)) + 1] == 0;
      if (unchanged) continue;
      const Upload u{r, l, shared ? 1 : heads, width, int64_t(packed.size())};
      changed.push_back(u);
      packed.resize(packed.size() + size_t(u.rows) * size_t(width), 0);
      for (int h = 0; h < u.rows; h++) {
        const size_t lh = size_t(l * heads + h);
        const std::vector<int32_t>& slots = region[lh];
        int32_t* row = packed.data() + u.offset + int64_t(h) * width;
        for (size_t i = 0; i < slots.size(); i++) {
          KVLAB_ASSERT(slots[i] >= 0 && slots[i] < length[lh] && (i == 0 || slots[i] > slots[i - 1]));
          row[i] = slots[i];
        }
      }
    }
  }
  if (!changed.empty()) {
    b.write(keep_, packed.data(), packed.size() * sizeof(int32_t));
    b.write(count_, count.data(), count.size() * sizeof(int32_t));
  }
  const RopeTable* renumber = policy_->renumbers_positions() ? &model_.rope() : nullptr;
  for (const Upload& u : changed) {
    const int64_t lh0 = int64_t(u.region) * int64_t(n_lh) + int64_t(u.layer) * heads;
    const Tensor shift_rows = shift_.empty() ? Tensor{} : shift_.reshape({int64_t(2 * n_lh), 2}).slice(lh0, heads);
    CompactKeys keys{u.region == 1, renumber, shift_.empty() ? nullptr : &shift_rows};
    b.kv_compact(cache_, u.layer, keep_.slice(u.offset, int64_t(u.rows) * u.width).reshape({u.rows, u.width}),
                 count_.reshape({int64_t(regions.size()) * c.num_layers, heads}).slice(lh0 / heads, 1).reshape({heads}),
                 keys);
  }
  for (size_t lh = 0; lh < n_lh; lh++) {
    cache_.host_length[lh] = int32_t((*regions[0])[lh].size());
    if (!mid.empty()) mid.host_length[lh] = int32_t(split.middle[lh].size());
    // In place: slots ascend, so slot i's source is never below i.
    const std::vector<int32_t>& slots = (*plan)[lh];
    std::vector<int32_t>& held = positions_[lh];
    for (size_t i = 0; i < slots.size(); i++) held[i] = held[size_t(slots[i])];
    held.resize(slots.size());
  }
  b.synchronize();
  compactions_++;
}

std::vector<size_t> CachedSequence::kept_kv_bytes_per_layer() const { return kept_bytes_per_layer(true, true); }

std::vector<size_t> CachedSequence::kept_bytes_per_layer(bool k, bool v) const {
  const ModelConfig& c = model_.config();
  const size_t element = dtype_size(model_.backend().kv_dtype()), hd = size_t(c.head_dim);
  const ChannelPrunedKV& mid = cache_.pruned;
  std::vector<size_t> out(size_t(c.num_layers), 0);
  for (int l = 0; l < c.num_layers; l++) {
    for (int h = 0; h < c.num_kv_heads; h++) {
      const size_t lh = size_t(l * c.num_kv_heads + h);
      // Without a middle every kept slot is in the full region; with one, the full region at
      // every channel and the middle at its kept K channels, V only where the head keeps any.
      const size_t full = mid.empty() ? kept(l, h).size() : size_t(cache_.host_length[lh]);
      const size_t middle = mid.empty() ? 0 : size_t(mid.host_length[lh]);
      const size_t kept_k = mid.empty() ? 0 : size_t(mid.host_kept[lh]);
      if (k) out[size_t(l)] += (full * hd + middle * kept_k) * element;
      if (v) out[size_t(l)] += (full * hd + (kept_k > 0 ? middle * hd : 0)) * element;
    }
  }
  return out;
}

void CachedSequence::finish() const {
  if (spec_.on_snapshot) spec_.on_snapshot(*this, "end");
}

nlohmann::json CachedSequence::snapshot(const std::string& when) const {
  const ModelConfig& c = model_.config();
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < c.num_layers; l++) {
    nlohmann::json heads = nlohmann::json::array();
    for (int h = 0; h < c.num_kv_heads; h++) heads.push_back(kept(l, h));
    layers.push_back(heads);
  }
  return {{"when", when},
          {"tokens_seen", tokens_seen_},
          {"policy", policy_->name()},
          {"budget_tokens", budget_},
          {"layers", layers}};
}

}  // namespace kvlab
