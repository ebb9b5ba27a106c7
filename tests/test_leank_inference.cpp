// LeanK at inference (docs/leank.md, "The inference layout"): the CPU backend's attention over a
// channel-pruned middle region against plain attention with the dropped channels zeroed, the
// demotion schedule, the bytes, sparsity 0, and the refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "backend/backend.h"
#include "backend/pruned_region.h"
#include "cache/cached_sequence.h"
#include "cache/region_plan.h"
#include "cache/registry.h"
#include "core/error.h"
#include "leank/demotion.h"
#include "leank/mask.h"
#include "model/loaded_model.h"
#include "sweep/eval_config.h"
#include "test_support.h"

namespace kvlab {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

Tensor upload(Backend& b, const std::vector<int64_t>& shape, const std::vector<float>& v) {
  Tensor t = b.alloc(shape, DType::F32);
  b.write(t, v.data(), v.size() * 4);
  return t;
}

// `tokens` random tokens appended to every layer of a fresh cache.
KVCache filled(Backend& b, int layers, int heads, int hd, int tokens, int capacity, uint32_t seed) {
  KVCache c = b.alloc_kv_cache(layers, heads, hd, capacity);
  c.host_length.assign(size_t(layers * heads), 0);
  std::vector<int32_t> pos(static_cast<size_t>(tokens));
  for (int i = 0; i < tokens; i++) pos[size_t(i)] = i;
  Tensor p = b.alloc({tokens}, DType::I32);
  b.write(p, pos.data(), pos.size() * 4);
  for (int l = 0; l < layers; l++) {
    Tensor k = upload(b, {tokens, int64_t(heads) * hd}, random_floats(size_t(tokens) * heads * hd, seed + 2 * l));
    Tensor v = upload(b, {tokens, int64_t(heads) * hd}, random_floats(size_t(tokens) * heads * hd, seed + 2 * l + 1));
    b.kv_append(c, l, k, v, p);
  }
  for (int32_t& len : c.host_length) len = tokens;
  return c;
}

// keep[l, h, c] from per-(layer, head) lists of kept channels.
std::vector<int32_t> mask_of(int hd, const std::vector<std::vector<int>>& kept_lists) {
  std::vector<int32_t> keep(kept_lists.size() * size_t(hd), 0);
  for (size_t lh = 0; lh < kept_lists.size(); lh++)
    for (int c : kept_lists[lh]) keep[lh * size_t(hd) + size_t(c)] = 1;
  return keep;
}

// The reference: the plain cache with the middle's dropped channels zeroed, and the middle
// removed from heads that keep no channel.
void apply_mask_to_plain(Backend& b, KVCache& plain, const std::vector<int32_t>& keep, int sink, int demoted) {
  const int hd = plain.head_dim, heads = plain.kv_heads;
  for (int l = 0; l < plain.layers; l++) {
    std::vector<int32_t> keep_slots(size_t(heads) * plain.capacity, 0), count(static_cast<size_t>(heads));
    for (int h = 0; h < heads; h++) {
      const size_t lh = size_t(l * heads + h);
      float* k = plain.k[size_t(l)].ptr<float>() + int64_t(h) * plain.capacity * hd;
      int kept = 0;
      for (int c = 0; c < hd; c++) kept += keep[lh * size_t(hd) + size_t(c)];
      for (int s = sink; s < sink + demoted; s++)
        for (int c = 0; c < hd; c++)
          if (!keep[lh * size_t(hd) + size_t(c)]) k[int64_t(s) * hd + c] = 0.0f;
      const int len = plain.host_length[lh];
      int n = 0;
      for (int s = 0; s < len; s++)
        if (kept > 0 || s < sink || s >= sink + demoted) keep_slots[size_t(h) * plain.capacity + size_t(n++)] = s;
      count[size_t(h)] = n;
    }
    Tensor kt = b.alloc({heads, plain.capacity}, DType::I32), ct = b.alloc({heads}, DType::I32);
    b.write(kt, keep_slots.data(), keep_slots.size() * 4);
    b.write(ct, count.data(), count.size() * 4);
    b.kv_compact(plain, l, kt, ct);
  }
}

struct AttentionCase {
  int q_heads, kv_heads, hd, tokens, n, sink, recent;
  std::vector<std::vector<int>> kept;  // per (layer, head)
};

void check_attention(const AttentionCase& t) {
  auto b = make_backend(BackendKind::CPU);
  const int layers = int(t.kept.size()) / t.kv_heads;
  const std::vector<int32_t> keep = mask_of(t.hd, t.kept);
  KVCache pruned = filled(*b, layers, t.kv_heads, t.hd, t.tokens, t.tokens, 11);
  KVCache plain = filled(*b, layers, t.kv_heads, t.hd, t.tokens, t.tokens, 11);
  // The n newest tokens are the queries' own: demotion leaves them (and `recent` more) in full.
  attach_pruned_region(*b, pruned, keep, t.tokens, t.sink);
  LeanKWindow w{t.sink, t.recent, 1};
  Demoter demoter(*b, w);
  ASSERT_TRUE(demoter.demote(pruned, true));
  const int demoted = t.tokens - t.sink - t.recent;
  for (size_t lh = 0; lh < pruned.host_length.size(); lh++) {
    EXPECT_EQ(pruned.host_length[lh], t.sink + t.recent);
    EXPECT_EQ(pruned.pruned.host_length[lh], demoted);
  }
  apply_mask_to_plain(*b, plain, keep, t.sink, demoted);
  Tensor q = upload(*b, {t.n, int64_t(t.q_heads) * t.hd}, random_floats(size_t(t.n) * t.q_heads * t.hd, 99));
  Tensor got = b->alloc(q.shape, DType::F32), want = b->alloc(q.shape, DType::F32);
  const float scale = 1.0f / std::sqrt(float(t.hd));
  for (int l = 0; l < layers; l++) {
    b->attention(q, pruned, l, scale, got);
    b->attention(q, plain, l, scale, want);
    const std::vector<float> g = b->to_host_f32(got), r = b->to_host_f32(want);
    for (size_t i = 0; i < g.size(); i++) ASSERT_NEAR(g[i], r[i], 2e-6) << "layer " << l << " element " << i;
  }
}

TEST(LeankAttention, MatchesPlainAttentionWithDroppedChannelsZeroed) {
  // Head 0 keeps a scattered half, head 1 nothing (its middle goes), head 2 everything, head 3 one channel.
  check_attention({8, 4, 16, 40, 1, 3, 5,
                   {{0, 2, 5, 7, 8, 11, 12, 15}, {}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {9}}});
}

TEST(LeankAttention, SeveralQueriesStayCausalInTheFullRegion) {
  check_attention({4, 2, 16, 64, 4, 4, 8, {{1, 3, 5, 7}, {0, 8}, {}, {2, 4, 6, 8, 10, 12, 14, 15}}});
}

TEST(LeankAttention, NoSinkAndNoRecentBeyondTheQueries) {
  check_attention({2, 2, 8, 20, 1, 0, 1, {{0, 1, 2, 3}, {7}}});
}

TEST(LeankAttention, RegionBytesCountKeptChannelsAndOnlyHeadsThatKeepAny) {
  auto b = make_backend(BackendKind::CPU);
  KVCache c = filled(*b, 2, 2, 16, 4, 4, 1);
  const size_t full_k = c.k_bytes();
  attach_pruned_region(*b, c, mask_of(16, {{0, 1, 2, 3}, {}, {}, {}}), 100, 0);
  // Layer 0: 4 channels x 100 slots of K, one head of V; layer 1: nothing at all.
  EXPECT_EQ(c.pruned.k_bytes(), 4u * 100u * 4u);
  EXPECT_EQ(c.pruned.v_bytes(), 100u * 16u * 4u);
  EXPECT_TRUE(c.pruned.k[1].empty());
  EXPECT_TRUE(c.pruned.v[1].empty());
  EXPECT_EQ(c.k_bytes(), full_k + 1600u);
  EXPECT_EQ(c.pruned.host_kept, (std::vector<int32_t>{4, 0, 0, 0}));
}

TEST(LeankAttention, ResizingTheFullRegionKeepsEverySlot) {
  auto b = make_backend(BackendKind::CPU);
  KVCache c = filled(*b, 2, 2, 8, 10, 50, 5), same = filled(*b, 2, 2, 8, 10, 10, 5);
  resize_full_region(*b, c, 12);
  EXPECT_EQ(c.capacity, 12);
  Tensor q = upload(*b, {1, 16}, random_floats(16, 3));
  Tensor o1 = b->alloc({1, 16}, DType::F32), o2 = b->alloc({1, 16}, DType::F32);
  for (int l = 0; l < 2; l++) {
    b->attention(q, c, l, 0.3f, o1);
    b->attention(q, same, l, 0.3f, o2);
    EXPECT_EQ(b->to_host_f32(o1), b->to_host_f32(o2));
  }
}

// ---------------------------------------------------------------------------- on a model

std::string tiny_llama() { return testing::source_dir() + "/datasets/models/tiny-random-llama"; }

ChannelImportance importance_for(const ModelConfig& c, uint32_t seed) {
  ChannelImportance imp;
  imp.model = ModelFingerprint::of(c);
  imp.source = kImportanceSourceQkMagnitude;
  imp.values = random_floats(size_t(imp.model.channels()), seed);
  for (float& v : imp.values) v = std::fabs(v);
  return imp;
}

std::string write_mask_for(const ModelConfig& c, double sparsity, int alignment, const std::string& name) {
  const std::string path = testing::temp_dir() + "/" + name;
  write_mask(path, make_mask(importance_for(c, 7), sparsity, alignment));
  return path;
}

std::vector<int32_t> prompt(int n, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; i++) ids.push_back(int32_t(3 + (i * 37 + i / 5) % (vocab - 3)));
  return ids;
}

struct SequenceRun {
  std::vector<std::vector<float>> logits;  // prefill, then each step
  size_t bytes_after_prompt = 0;
  std::vector<size_t> kept_bytes;
};

SequenceRun run_sequence(Transformer& m, const CacheSpec& spec, int prompt_tokens, int steps) {
  CachedSequence seq(m, spec, prompt_tokens, steps);
  SequenceRun r;
  r.logits.push_back(seq.prefill(prompt(prompt_tokens, m.config().vocab_size)));
  r.bytes_after_prompt = seq.allocated_bytes();
  for (int s = 0; s < steps; s++) r.logits.push_back(seq.step(int32_t(5 + s)));
  r.kept_bytes = seq.kept_kv_bytes_per_layer();
  return r;
}

CacheSpec leank_spec(const std::string& mask, int sink, int recent, int accumulate) {
  CacheSpec s;
  s.channel_mask = mask;
  s.leank = {sink, recent, accumulate};
  return s;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

TEST(LeankSequence, SparsityZeroReproducesTheFullCacheLogitsExactly) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  const SequenceRun full = run_sequence(*m.model, CacheSpec{}, 50, 12);
  const SequenceRun lean = run_sequence(*m.model, leank_spec(write_mask_for(m.config, 0.0, 4, "s0.safetensors"), 4, 8, 4), 50, 12);
  ASSERT_EQ(full.logits.size(), lean.logits.size());
  // Every channel kept: no middle region at all, the very same computation.
  for (size_t i = 0; i < full.logits.size(); i++) EXPECT_EQ(full.logits[i], lean.logits[i]) << "step " << i;
}

// The middle path with nothing pruned, driven by hand: a plain cache and one whose middle keeps
// every channel (sink 4), both of `capacity` slots, and a 50-token prompt for them.
struct TwinCaches {
  KVCache plain, lean;
  std::vector<int32_t> ids, pos;
};

TwinCaches twin_caches(Backend& b, Transformer& t, int capacity) {
  TwinCaches tw{t.new_cache(capacity), t.new_cache(capacity), prompt(50, t.config().vocab_size), {}};
  for (int i = 0; i < 50; i++) tw.pos.push_back(i);
  attach_pruned_region(b, tw.lean, std::vector<int32_t>(size_t(ModelFingerprint::of(t.config()).channels()), 1),
                       capacity, 4);
  return tw;
}

TEST(LeankSequence, EveryChannelInTheMiddleMatchesTheFullCache) {
  // The same attention up to fp32 rounding, through the prompt's demotion and two rounds of
  // decode demotion.
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  Transformer& t = *m.model;
  TwinCaches tw = twin_caches(*backend, t, 62);
  KVCache &full = tw.plain, &lean = tw.lean;
  const std::vector<int32_t>&ids = tw.ids, &pos = tw.pos;
  Demoter demoter(*backend, {4, 8, 4});
  std::vector<float> a = backend->to_host_f32(t.forward(ids, pos, full, Logits::Last));
  std::vector<float> b = backend->to_host_f32(t.forward(ids, pos, lean, Logits::Last));
  EXPECT_EQ(a, b);
  EXPECT_TRUE(demoter.demote(lean, true));
  for (int s = 0; s < 12; s++) {
    a = backend->to_host_f32(t.forward({int32_t(5 + s)}, {50 + s}, full, Logits::Last));
    b = backend->to_host_f32(t.forward({int32_t(5 + s)}, {50 + s}, lean, Logits::Last));
    EXPECT_LT(max_diff(a, b), 1e-4) << "step " << s;
    demoter.demote(lean, false);
  }
  EXPECT_EQ(lean.pruned.host_length[0], 38 + 12);
}

// Compacts `cache` (one region) with per-(layer, head) slot lists, as CachedSequence uploads them;
// with `renumber`, re-rotating moved keys by their shift.
void compact_region(Backend& b, KVCache& cache, const KeepPlan& plan, const std::vector<int32_t>* shift, int region,
                    const RopeTable* renumber) {
  const int heads = cache.kv_heads;
  const int width = std::max(1, cache.pruned.empty() || region == 0 ? cache.capacity : cache.pruned.capacity);
  for (int l = 0; l < cache.layers; l++) {
    std::vector<int32_t> keep(size_t(heads * width), 0), count(static_cast<size_t>(heads), 0);
    for (int h = 0; h < heads; h++) {
      const std::vector<int32_t>& slots = plan[size_t(l * heads + h)];
      std::copy(slots.begin(), slots.end(), keep.begin() + h * width);
      count[size_t(h)] = int32_t(slots.size());
    }
    Tensor kt = b.alloc({heads, width}, DType::I32), ct = b.alloc({heads}, DType::I32), st;
    b.write(kt, keep.data(), keep.size() * 4);
    b.write(ct, count.data(), count.size() * 4);
    if (shift) {
      st = b.alloc({heads, 2}, DType::I32);
      b.write(st, shift->data() + 2 * (size_t(region) * plan.size() + size_t(l * heads)), size_t(heads) * 8);
    }
    b.kv_compact(cache, l, kt, ct, {region == 1, renumber, shift ? &st : nullptr});
    for (int h = 0; h < heads; h++) {
      std::vector<int32_t>& len = region == 1 ? cache.pruned.host_length : cache.host_length;
      len[size_t(l * heads + h)] = count[size_t(h)];
    }
  }
}

TEST(LeankSequence, RenumberedEvictionAcrossBothRegionsMatchesThePlainCache) {
  // Every channel in the middle: an eviction over the age order that cuts into the front, the
  // middle and the rest of the full region, split by split_by_region and applied per region
  // with re-rotation, attends exactly as the plain cache compacted in one piece, and so do the
  // decode steps and demotions after it.
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  Transformer& t = *m.model;
  const ModelConfig& c = m.config;
  TwinCaches tw = twin_caches(*backend, t, 62);
  KVCache &plain = tw.plain, &lean = tw.lean;
  Demoter demoter(*backend, {4, 8, 4});
  t.forward(tw.ids, tw.pos, plain, Logits::Last);
  t.forward(tw.ids, tw.pos, lean, Logits::Last);
  ASSERT_TRUE(demoter.demote(lean, true));  // front 4, middle 38, full 12

  // Age-order plan, different per (layer, head): drop one sink, every third middle token, and
  // one of the recent ones.
  const size_t n = size_t(c.num_layers * c.num_kv_heads);
  KeepPlan plan(n);
  for (size_t lh = 0; lh < n; lh++)
    for (int32_t i = 0; i < 50; i++)
      if (i != int32_t(lh % 4) && !(i >= 4 && i < 42 && (i + int(lh)) % 3 == 0) && i != 45) plan[lh].push_back(i);
  const RopeTable* rope = &t.rope();
  compact_region(*backend, plain, plan, nullptr, 0, rope);
  const RegionPlans split = split_by_region(plan, lean.pruned);
  compact_region(*backend, lean, split.full, &split.shift, 0, rope);
  compact_region(*backend, lean, split.middle, &split.shift, 1, rope);
  lean.pruned.host_front = split.front;
  backend->write(lean.pruned.front, split.front.data(), n * 4);
  EXPECT_EQ(lean.pruned.host_front[0], 3);
  EXPECT_EQ(lean.host_length[0] + lean.pruned.host_length[0], plain.host_length[0]);

  for (int s = 0; s < 12; s++) {
    // Renumbered: the new token sits at the kept count (every head keeps the same number here).
    const int32_t at = plain.host_length[0];
    ForwardExtras extras;
    extras.rope_positions = {at};
    const std::vector<float> a = backend->to_host_f32(t.forward({int32_t(5 + s)}, {50 + s}, plain, Logits::Last, extras));
    const std::vector<float> b = backend->to_host_f32(t.forward({int32_t(5 + s)}, {50 + s}, lean, Logits::Last, extras));
    EXPECT_LT(max_diff(a, b), 1e-4) << "step " << s;
    demoter.demote(lean, false);
  }
  EXPECT_GT(lean.pruned.host_length[0], 30);
}

// The scores of a cache with a middle, joined in age order as apply_policy hands them to a policy.
std::vector<float> joined_scores(Backend& b, const KVCache& c) {
  std::vector<float> out;
  scores_in_age_order(b.to_host_f32(c.score), c.capacity, c.host_length, b.to_host_f32(c.pruned.score), c.pruned, out);
  return out;
}

// H2O's view of a cache: every head holds `tokens` slots of positions 0..tokens-1 (no eviction
// before), scores from the cache in rows of `capacity`.
KeepPlan h2o_plan(const ModelConfig& c, int budget, int tokens, const std::vector<float>& scores, int capacity) {
  std::vector<int32_t> held(static_cast<size_t>(tokens));
  for (int i = 0; i < tokens; i++) held[size_t(i)] = i;
  const std::vector<std::vector<int32_t>> positions(size_t(c.num_layers * c.num_kv_heads), held);
  CacheState state;
  state.layers = c.num_layers;
  state.kv_heads = c.num_kv_heads;
  state.tokens_seen = tokens;
  state.positions = &positions;
  state.scores = &scores;
  state.capacity = capacity;
  std::optional<KeepPlan> plan = make_policy("h2o", nlohmann::json::object(), c.num_layers, c.num_kv_heads, budget)->select(state);
  return plan ? *plan : KeepPlan{};
}

// Every channel in the middle: attention accumulated over both regions, carried through the
// prompt's demotion and the decode demotions, joined in age order, is the plain cache's up to
// fp32 rounding; H2O picks the same slots from it, and after its eviction is applied per region
// the steps attend and accumulate as the plain cache does.
TEST(LeankSequence, H2oOverBothRegionsRanksAsThePlainCache) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  Transformer& t = *m.model;
  const ModelConfig& c = m.config;
  TwinCaches tw = twin_caches(*backend, t, 70);
  KVCache &plain = tw.plain, &lean = tw.lean;
  attach_scores(*backend, plain);
  attach_scores(*backend, lean);
  ASSERT_FALSE(lean.pruned.score.empty());
  Demoter demoter(*backend, {4, 8, 4});
  ForwardExtras scored;
  scored.score_first_query = 0;
  t.forward(tw.ids, tw.pos, plain, Logits::Last, scored);
  t.forward(tw.ids, tw.pos, lean, Logits::Last, scored);
  ASSERT_TRUE(demoter.demote(lean, true));
  int tokens = 50;
  auto step_both = [&](int s) {
    const std::vector<float> a = backend->to_host_f32(t.forward({int32_t(5 + s)}, {tokens}, plain, Logits::Last, scored));
    const std::vector<float> b = backend->to_host_f32(t.forward({int32_t(5 + s)}, {tokens}, lean, Logits::Last, scored));
    EXPECT_LT(max_diff(a, b), 1e-4) << "step " << s;
    tokens++;
    demoter.demote(lean, false);
  };
  for (int s = 0; s < 6; s++) step_both(s);
  ASSERT_GT(lean.pruned.host_length[0], 30);

  const std::vector<float> want = backend->to_host_f32(plain.score), got = joined_scores(*backend, lean);
  const int lean_row = lean.capacity + lean.pruned.capacity;
  double worst = 0, mass = 0;
  for (size_t lh = 0; lh < size_t(c.num_layers * c.num_kv_heads); lh++)
    for (int j = 0; j < tokens; j++) {
      worst = std::max(worst, double(std::fabs(got[lh * size_t(lean_row) + size_t(j)] - want[lh * 70 + size_t(j)])));
      mass += want[lh * 70 + size_t(j)];
    }
  EXPECT_LT(worst, 1e-4);
  // Every query of every head gave one unit of probability: nothing was dropped on the way.
  EXPECT_NEAR(mass, double(c.num_layers) * c.num_heads * (50 + 6), 1e-2);

  const int budget = 24;
  const KeepPlan plan = h2o_plan(c, budget, tokens, want, 70);
  ASSERT_EQ(plan.size(), size_t(c.num_layers * c.num_kv_heads));
  EXPECT_EQ(h2o_plan(c, budget, tokens, got, lean_row), plan);
  compact_region(*backend, plain, plan, nullptr, 0, nullptr);
  const RegionPlans split = split_by_region(plan, lean.pruned);
  compact_region(*backend, lean, split.full, nullptr, 0, nullptr);
  compact_region(*backend, lean, split.middle, nullptr, 1, nullptr);
  lean.pruned.host_front = split.front;
  backend->write(lean.pruned.front, split.front.data(), plan.size() * 4);
  for (int s = 6; s < 12; s++) step_both(s);
  const std::vector<float> after = backend->to_host_f32(plain.score), joined = joined_scores(*backend, lean);
  for (size_t lh = 0; lh < plan.size(); lh++)
    for (int j = 0; j < plain.host_length[lh]; j++)
      ASSERT_NEAR(joined[lh * size_t(lean_row) + size_t(j)], after[lh * 70 + size_t(j)], 1e-4) << lh << " slot " << j;
}

TEST(LeankSequence, DemotesThePromptsMiddleThenEveryAccumulateSteps) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  const std::string mask = write_mask_for(m.config, 0.5, 4, "s5.safetensors");
  CachedSequence seq(*m.model, leank_spec(mask, 4, 8, 4), 50, 10);
  seq.prefill(prompt(50, m.config.vocab_size));
  const KVCache& c = seq.cache();
  EXPECT_EQ(c.capacity, 16);  // sink + recent + accumulate, after the prompt
  for (size_t lh = 0; lh < c.host_length.size(); lh++) {
    EXPECT_EQ(c.host_length[lh], 12);
    EXPECT_EQ(c.pruned.host_length[lh], 38);
  }
  for (int s = 0; s < 3; s++) seq.step(7);
  EXPECT_EQ(c.host_length[0], 15);
  seq.step(7);  // the 16th: 4 move out
  EXPECT_EQ(c.host_length[0], 12);
  EXPECT_EQ(c.pruned.host_length[0], 42);
  for (int s = 0; s < 6; s++) EXPECT_TRUE(std::isfinite(seq.step(7)[0]));
  // Kept bytes: the full region at every channel, the middle at its kept K channels (+ V if any).
  const ChannelMask mk = read_mask(mask);
  const std::vector<size_t> bytes = seq.kept_kv_bytes_per_layer(), k = seq.kept_k_bytes_per_layer(),
                            v = seq.kept_v_bytes_per_layer();
  for (int l = 0; l < m.config.num_layers; l++) {
    size_t want_k = 0, want_v = 0;
    for (int h = 0; h < m.config.num_kv_heads; h++) {
      const size_t lh = size_t(l * m.config.num_kv_heads + h), kept = size_t(mk.kept_count(l, h));
      want_k += (size_t(c.host_length[lh]) * 16 + size_t(c.pruned.host_length[lh]) * kept) * 4;
      want_v += (size_t(c.host_length[lh]) + (kept ? size_t(c.pruned.host_length[lh]) : 0)) * 16 * 4;
    }
    EXPECT_EQ(k[size_t(l)], want_k);
    EXPECT_EQ(v[size_t(l)], want_v);
    EXPECT_EQ(bytes[size_t(l)], want_k + want_v);
  }
}

TEST(LeankSequence, PrunedCacheHoldsFewerBytes) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 400, false);
  const SequenceRun full = run_sequence(*m.model, CacheSpec{}, 300, 2);
  const SequenceRun lean = run_sequence(*m.model, leank_spec(write_mask_for(m.config, 0.75, 4, "s75.safetensors"), 4, 8, 4), 300, 2);
  EXPECT_LT(double(lean.bytes_after_prompt), 0.75 * double(full.bytes_after_prompt));
}

TEST(LeankSequence, ComposesWithSnapKv) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  CacheSpec s = leank_spec(write_mask_for(m.config, 0.5, 4, "snap.safetensors"), 4, 8, 4);
  s.policy = "snapkv";
  s.budget = "32";
  s.params = {{"window", 8}};
  CachedSequence seq(*m.model, s, 80, 6);
  seq.prefill(prompt(80, m.config.vocab_size));
  for (int i = 0; i < 6; i++) EXPECT_TRUE(std::isfinite(seq.step(9)[0]));
  EXPECT_EQ(seq.cache().host_length[0] + seq.cache().pruned.host_length[0], 32 + 6);
}

TEST(LeankSequence, ComposesWithH2o) {
  // H2O ranks the tokens of both regions together: memory stays flat over 10x the budget, the
  // kept tokens stay within budget + interval, the middle keeps old heavy hitters and their
  // scores.
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  const ModelConfig& c = m.config;
  CacheSpec s = leank_spec(write_mask_for(c, 0.5, 4, "h2o.safetensors"), 4, 8, 4);
  s.policy = "h2o";
  s.budget = "32";
  s.interval = 3;
  const int steps = 320;
  CachedSequence seq(*m.model, s, 60, steps);
  seq.prefill(prompt(60, c.vocab_size));
  size_t bytes = 0;
  for (int i = 0; i < steps; i++) {
    ASSERT_TRUE(std::isfinite(seq.step(int32_t(5 + i % 50))[0])) << "step " << i;
    if (i == 64) bytes = seq.allocated_bytes();
    for (size_t lh = 0; lh < size_t(c.num_layers * c.num_kv_heads); lh++)
      ASSERT_LE(seq.cache().host_length[lh] + seq.cache().pruned.host_length[lh], 32 + 3) << "step " << i;
  }
  EXPECT_EQ(seq.allocated_bytes(), bytes);
  EXPECT_GT(seq.compactions(), steps / 3 - 2);
  // Heavy hitters from long before the budget's reach survive in the middle somewhere.
  const int32_t long_ago = 60 + steps - 2 * 32;
  bool old_in_middle = false;
  for (int l = 0; l < c.num_layers; l++)
    for (int h = 0; h < c.num_kv_heads; h++) {
      const size_t lh = size_t(l * c.num_kv_heads + h);
      const std::vector<int32_t>& kept = seq.kept(l, h);
      ASSERT_EQ(size_t(seq.cache().host_length[lh] + seq.cache().pruned.host_length[lh]), kept.size());
      const int front = seq.cache().pruned.host_front[lh];
      for (int i = front; i < front + seq.cache().pruned.host_length[lh]; i++) old_in_middle |= kept[size_t(i)] < long_ago;
    }
  EXPECT_TRUE(old_in_middle);
  const std::vector<float> full = backend->to_host_f32(seq.cache().score), mid = backend->to_host_f32(seq.cache().pruned.score);
  for (float x : full) ASSERT_GE(x, 0.0f);
  double middle_mass = 0;
  for (float x : mid) middle_mass += x;
  EXPECT_GT(middle_mass, 0.0);
}

TEST(LeankSequence, ComposesWithThePoliciesThatEvictWhileDecoding) {
  // Position-based policies choose the same original positions with or without a middle region
  // (they see every kept token in age order), memory stays flat over 10x the budget, and the
  // logits stay finite past the model's maximum position (128 here).
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  const ModelConfig& c = m.config;
  const std::string pairs = testing::temp_dir() + "/pairs.safetensors";
  write_mask(pairs, make_mask(importance_for(c, 11), 0.5, 4, true));
  ASSERT_TRUE(read_mask(pairs).pair_closed());
  struct Case {
    std::string policy;
    nlohmann::json params;
  };
  const Case cases[] = {{"streaming", {{"sinks", 2}}},
                        {"streaming", {{"sinks", 2}, {"positions", "original"}}},
                        {"lacache", nlohmann::json::object()}};
  const int budget = 32, steps = 10 * budget;
  for (const Case& cs : cases) {
    const std::string what = cs.policy + " " + cs.params.dump();
    CacheSpec plain;
    plain.policy = cs.policy;
    plain.budget = std::to_string(budget);
    plain.params = cs.params;
    plain.interval = 3;
    CacheSpec lean = plain;
    lean.channel_mask = pairs;
    lean.leank = {4, 8, 4};
    CachedSequence a(*m.model, plain, 60, steps), b(*m.model, lean, 60, steps);
    a.prefill(prompt(60, c.vocab_size));
    b.prefill(prompt(60, c.vocab_size));
    size_t bytes = 0;
    for (int s = 0; s < steps; s++) {
      a.step(int32_t(5 + s % 50));
      ASSERT_TRUE(std::isfinite(b.step(int32_t(5 + s % 50))[0])) << what << " step " << s;
      if (s == 2 * budget) bytes = b.allocated_bytes();
    }
    EXPECT_EQ(b.allocated_bytes(), bytes) << what;
    EXPECT_GT(b.cache().pruned.host_length[0], 0) << what;
    for (int l = 0; l < c.num_layers; l++)
      for (int h = 0; h < c.num_kv_heads; h++) {
        EXPECT_EQ(b.kept(l, h), a.kept(l, h)) << what << " layer " << l << " head " << h;
        const size_t lh = size_t(l * c.num_kv_heads + h);
        EXPECT_EQ(size_t(b.cache().host_length[lh] + b.cache().pruned.host_length[lh]), b.kept(l, h).size()) << what;
      }
  }
}

// ---------------------------------------------------------------------------- refusals

using testing::error_of;

TEST(LeankSequence, RefusesWhatItCannotDo) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  const std::string mask = write_mask_for(m.config, 0.5, 4, "r.safetensors");
  // Re-rotating pruned keys needs both channels of each RoPE pair.
  ASSERT_FALSE(read_mask(mask).pair_closed());
  for (const char* policy : {"streaming", "lacache"}) {
    CacheSpec s = leank_spec(mask, 4, 8, 4);
    s.policy = policy;
    s.budget = "32";
    const std::string e = error_of([&] { CachedSequence(*m.model, s, 60, 4); });
    EXPECT_NE(e.find("--rope-pairs"), std::string::npos) << policy << ": " << e;
  }
  CacheSpec streaming = leank_spec(mask, 4, 8, 4);
  streaming.streaming_prefill = true;
  EXPECT_NE(error_of([&] { CachedSequence(*m.model, streaming, 60, 4); }).find("streaming-prefill"), std::string::npos);
  // A mask for another model.
  auto other = load_model(testing::source_dir() + "/datasets/models/tiny-random-qwen2", *backend, 64, false);
  const std::string other_mask = write_mask_for(other.config, 0.5, 4, "other.safetensors");
  EXPECT_NE(error_of([&] { CachedSequence(*m.model, leank_spec(other_mask, 4, 8, 4), 60, 4); }).find("another model"),
            std::string::npos);
  EXPECT_NE(error_of([] { LeanKWindow{-1, 8, 4}.validate(); }).find("sink"), std::string::npos);
  EXPECT_NE(error_of([] { LeanKWindow{4, 8, 0}.validate(); }).find("accumulate"), std::string::npos);
}

TEST(LeankSequence, SweepAndConfigKeysReachTheCacheSpec) {
  const nlohmann::json config = {{"cache", "snapkv"},      {"budget", "64"},      {"leank_mask", "m.safetensors"},
                                 {"leank_sink", 32},       {"leank_recent", 128}, {"leank_accumulate", 16}};
  const CacheSpec s = eval_cache_spec(config, "sweep.json (run 1)");
  EXPECT_EQ(s.channel_mask, "m.safetensors");
  EXPECT_EQ(s.leank.sink, 32);
  EXPECT_EQ(s.leank.recent, 128);
  EXPECT_EQ(s.leank.accumulate, 16);
  EXPECT_EQ(to_json(s)["leank"]["mask"], "m.safetensors");
  EXPECT_TRUE(is_eval_cache_key("leank_mask"));
  EXPECT_NE(error_of([] { eval_cache_spec({{"leank_sink", "many"}}, "w"); }).find("leank_sink"), std::string::npos);
  EXPECT_NE(error_of([] { eval_cache_spec({{"leank_accumulate", 0}}, "w"); }).find("accumulate"), std::string::npos);
}

}  // namespace
}  // namespace kvlab
