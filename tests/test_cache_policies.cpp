// Cache policies: kept sets computed by hand for small cases, the ladder's invariants over
// many compactions, and whole-model behaviour through CachedSequence on the tiny checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "cache/cached_sequence.h"
#include "cache/lacache.h"
#include "cache/registry.h"
#include "cache/snapkv.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/loaded_model.h"
#include "model/rope.h"
#include "test_support.h"

namespace kvlab {
namespace {

std::vector<int32_t> range(int a, int b) {
  std::vector<int32_t> v(static_cast<size_t>(b - a));
  std::iota(v.begin(), v.end(), a);
  return v;
}
std::vector<int32_t> cat(std::vector<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Original positions each layer keeps when the ladder runs after every token, as the
// reference's ppl protocol does.
std::vector<std::vector<int32_t>> run_ladder(const LadderParams& p, int tokens) {
  LadderCompactor ladder(p);
  std::vector<std::vector<int32_t>> kept(size_t(p.layers));
  for (int t = 0; t < tokens; t++) {
    for (auto& k : kept) k.push_back(t);
    auto plan = ladder.compact(int(kept[0].size()));
    if (!plan) continue;
    for (int l = 0; l < p.layers; l++) {
      std::vector<int32_t> next;
      for (int32_t slot : (*plan)[size_t(l)]) next.push_back(kept[size_t(l)][size_t(slot)]);
      kept[size_t(l)] = next;
    }
  }
  return kept;
}

TEST(LaCache, GroupArithmeticMatchesTheReference) {
  // Worked values from the reference's index code (docs/methods.md).
  struct Case { int layers, span, overlap, before, after; };
  for (Case c : {Case{32, 16, 0, 2, 1}, Case{32, 8, 4, 7, 2}, Case{32, 8, 0, 4, 1}, Case{28, 14, 0, 2, 1},
                 Case{24, 9, 7, 9, 5}}) {
    LadderCompactor l({c.layers, 256, c.span, c.overlap, 4});
    EXPECT_EQ(l.group_before(), c.before) << c.layers << "/" << c.span << "/" << c.overlap;
    EXPECT_EQ(l.group_after(), c.after) << c.layers << "/" << c.span << "/" << c.overlap;
  }
  // Compensation: floor((B - A) / 2) extra entries.
  EXPECT_EQ(LadderCompactor({32, 256, 8, 4, 4}).max_kept(), 258);
}

TEST(LaCache, FirstTwoCompactionsByHand) {
  // 4 layers, span 2: groups of B=2, each layer keeps A=1 at offset layer % 2; C=12, 4 sinks.
  auto kept = run_ladder({4, 12, 2, 0, 4}, 13);
  EXPECT_EQ(kept[0], cat({range(0, 5), range(6, 13)}));
  EXPECT_EQ(kept[1], cat({range(0, 4), range(5, 13)}));
  EXPECT_EQ(kept[2], kept[0]);
  kept = run_ladder({4, 12, 2, 0, 4}, 14);
  EXPECT_EQ(kept[0], cat({range(0, 5), {6}, range(8, 14)}));
  EXPECT_EQ(kept[1], cat({range(0, 4), {5, 7}, range(8, 14)}));
  EXPECT_EQ(kept[3], kept[1]);
}

TEST(LaCache, RepeatedCompactionKeepsMemoryFixedAndSpreadsOldTokensAcrossLayers) {
  const LadderParams p{8, 64, 4, 0, 4};
  LadderCompactor probe(p);
  auto kept = run_ladder(p, 5000);  // dozens of startovers
  std::set<int32_t> all;
  for (const auto& k : kept) {
    EXPECT_EQ(k.size(), kept[0].size());  // every layer the same size
    EXPECT_LE(int(k.size()), probe.max_kept());
    EXPECT_TRUE(std::is_sorted(k.begin(), k.end()));
    for (int s = 0; s < p.sinks; s++) EXPECT_EQ(k[size_t(s)], s);  // sinks survive
    EXPECT_EQ(k.back(), 4999);                                     // the newest token is always there
    all.insert(k.begin(), k.end());
  }
  // The ladder: the union over layers reaches further back than any one layer holds.
  EXPECT_GT(all.size(), kept[0].size());
}

TEST(LaCache, BadLaddersAreRefusedWithTheReason) {
  auto error_of = [](LadderParams p) {
    try {
      LadderCompactor l(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of({4, 64, 5, 0, 4}).find("covers every layer"), std::string::npos);
  EXPECT_NE(error_of({4, 64, 2, 2, 4}).find("overlap"), std::string::npos);
  EXPECT_NE(error_of({32, 20, 16, 0, 4}).find("below sinks + layers"), std::string::npos);
  EXPECT_NE(error_of({4, 64, 4, 0, 4}).find("free no slots"), std::string::npos);
}

CacheState state_for(const std::vector<std::vector<int32_t>>& positions, int layers, int heads,
                     const std::vector<float>* scores, int capacity, CachePhase phase) {
  CacheState s;
  s.layers = layers;
  s.kv_heads = heads;
  s.positions = &positions;
  s.scores = scores;
  s.capacity = capacity;
  s.phase = phase;
  return s;
}

TEST(StreamingLlm, KeepsSinksAndWindow) {
  auto policy = make_policy("streaming", {{"sinks", 2}}, 1, 1, 6);
  std::vector<std::vector<int32_t>> pos = {range(0, 10)};
  auto plan = policy->select(state_for(pos, 1, 1, nullptr, 16, CachePhase::Decode));
  ASSERT_TRUE(plan);
  EXPECT_EQ((*plan)[0], (std::vector<int32_t>{0, 1, 6, 7, 8, 9}));
  pos = {range(0, 6)};
  EXPECT_FALSE(policy->select(state_for(pos, 1, 1, nullptr, 16, CachePhase::Decode)));
}

TEST(H2o, KeepsRecentAndHeaviestPerHead) {
  auto policy = make_policy("h2o", {{"recent", 2}}, 1, 2, 4);
  std::vector<std::vector<int32_t>> pos = {range(0, 7), range(0, 7)};
  // capacity 8; head 0 favours slots 1 and 4, head 1 favours 0 and 3 (ties broken by position).
  std::vector<float> scores = {0.1f, 5, 0.2f, 0.3f, 4, 9, 9, 0,   //
                               3,    1, 1,    3,    0, 9, 9, 0};
  auto plan = policy->select(state_for(pos, 1, 2, &scores, 8, CachePhase::Decode));
  ASSERT_TRUE(plan);
  EXPECT_EQ((*plan)[0], (std::vector<int32_t>{1, 4, 5, 6}));
  EXPECT_EQ((*plan)[1], (std::vector<int32_t>{0, 3, 5, 6}));
}

TEST(SnapKv, PoolingMatchesTorchDefaults) {
  std::vector<float> s = {0, 1, 0, 0, 4};
  EXPECT_EQ(pool_votes(s.data(), 5, 3, true), (std::vector<float>{1, 1, 1, 4, 4}));
  std::vector<float> avg = pool_votes(s.data(), 5, 3, false);  // zero padding counts: /3 at the edges too
  EXPECT_FLOAT_EQ(avg[0], 1.0f / 3);
  EXPECT_FLOAT_EQ(avg[4], 4.0f / 3);
}

TEST(SnapKv, KeepsTopVotedPrefixPlusWindowOnceAtPrefill) {
  auto policy = make_policy("snapkv", {{"window", 2}, {"kernel", 1}}, 1, 1, 5);
  std::vector<std::vector<int32_t>> pos = {range(0, 8)};
  std::vector<float> scores = {1, 7, 2, 9, 3, 8, 0, 0};
  auto plan = policy->select(state_for(pos, 1, 1, &scores, 8, CachePhase::Prefill));
  ASSERT_TRUE(plan);
  EXPECT_EQ((*plan)[0], (std::vector<int32_t>{1, 3, 5, 6, 7}));
  EXPECT_FALSE(policy->select(state_for(pos, 1, 1, &scores, 8, CachePhase::Decode)));
}

TEST(PyramidKv, BudgetsShrinkWithDepthAroundTheMean) {
  auto policy = make_policy("pyramidkv", {{"window", 4}}, 4, 1, 44);
  std::vector<std::vector<int32_t>> pos(4, range(0, 100));
  std::vector<float> scores(4 * 100, 1.0f);
  auto plan = policy->select(state_for(pos, 4, 1, &scores, 100, CachePhase::Prefill));
  ASSERT_TRUE(plan);
  size_t total = 0;
  for (int l = 0; l < 4; l++) {
    if (l > 0) EXPECT_LT((*plan)[size_t(l)].size(), (*plan)[size_t(l) - 1].size());
    total += (*plan)[size_t(l)].size();
  }
  EXPECT_NEAR(double(total) / 4, 44.0, 1.0);
}

TEST(Registry, ErrorsListTheValidChoices) {
  using testing::error_of;
  EXPECT_NE(error_of([] { make_policy("lru", {}, 2, 2, 8); }).find("full, streaming, h2o, snapkv, pyramidkv, lacache"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_policy("lacache", {{"spam", 3}}, 2, 2, 64); }).find("span"), std::string::npos);
  EXPECT_NE(error_of([] { make_policy("snapkv", {{"pooling", "median"}}, 2, 2, 64); }).find("max, avg"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_policy("h2o", {}, 2, 2, 0); }).find("needs a budget"), std::string::npos);
  EXPECT_NE(error_of([] { make_policy("streaming", {{"window", 100}}, 2, 2, 64); }).find("must equal"),
            std::string::npos);
}

TEST(CacheSpec, AutoIntervalIsAThirtySecondOfTheBudgetWithinOneToSixtyFour) {
  EXPECT_EQ(resolve_interval(0, 8192), 64);
  EXPECT_EQ(resolve_interval(0, 1024), 32);
  EXPECT_EQ(resolve_interval(0, 256), 8);
  EXPECT_EQ(resolve_interval(0, 20), 1);
  EXPECT_EQ(resolve_interval(0, 0), 1);  // no budget: the policy is called after every step
  EXPECT_EQ(resolve_interval(5, 8192), 5);
}

// Whole-model tests on the tiny checkpoints, CPU backend.
class TinyModel : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_cpu_backend();
    model_ = load_model(testing::source_dir() + "/datasets/models/tiny-random-" + std::string(arch()), *backend_, 1024);
    prompt_.resize(200);
    for (size_t i = 0; i < prompt_.size(); i++) prompt_[i] = int32_t((i * 37 + 11) % 500);
  }
  virtual const char* arch() const { return "llama"; }

  std::vector<float> run(const CacheSpec& spec, int steps, std::vector<int32_t>* tokens = nullptr) {
    CachedSequence seq(*model_.model, spec, int(prompt_.size()), steps);
    GenerateOptions g;
    g.max_new_tokens = steps;
    g.keep_logits = true;
    GenerateResult r = generate_greedy(seq, prompt_, g);
    if (tokens) *tokens = r.tokens;
    return r.logits;
  }

  std::unique_ptr<Backend> backend_;
  LoadedModel model_;
  std::vector<int32_t> prompt_;
};

TEST_F(TinyModel, EveryPolicyWithABudgetBeyondTheSequenceEqualsTheFullCache) {
  std::vector<int32_t> full_tokens;
  std::vector<float> full = run(CacheSpec{}, 16, &full_tokens);
  for (const char* policy : {"streaming", "h2o", "snapkv", "pyramidkv", "lacache"}) {
    CacheSpec spec;
    spec.policy = policy;
    spec.budget = "600";
    std::vector<int32_t> tokens;
    std::vector<float> logits = run(spec, 16, &tokens);
    EXPECT_EQ(logits, full) << policy;  // bitwise: nothing was evicted, nothing re-rotated
    EXPECT_EQ(tokens, full_tokens) << policy;
  }
}

TEST_F(TinyModel, StreamingKeepsSinksAndRecentInEveryHead) {
  CacheSpec spec;
  spec.policy = "streaming";
  spec.budget = "36";
  CachedSequence seq(*model_.model, spec, int(prompt_.size()), 10);
  seq.prefill(prompt_);
  for (int l = 0; l < 3; l++)
    for (int h = 0; h < 2; h++) EXPECT_EQ(seq.kept(l, h), cat({range(0, 4), range(168, 200)}));
  for (int i = 0; i < 5; i++) seq.step(7);
  EXPECT_EQ(seq.kept(2, 1), cat({range(0, 4), range(173, 205)}));
}

// The whole prompt goes in at full size; once the policy has cut it to the budget the store
// shrinks to the budget plus what arrives before the next call, and decoding goes on in it.
TEST_F(TinyModel, AfterTheWholePromptTheStoreShrinksToTheBudget) {
  for (const char* policy : {"streaming", "h2o", "snapkv", "lacache"}) {
    CacheSpec spec;
    spec.policy = policy;
    spec.budget = "36";
    spec.interval = 4;
    CachedSequence seq(*model_.model, spec, int(prompt_.size()), 10);
    const size_t before = seq.allocated_bytes();
    EXPECT_GE(seq.capacity(), int(prompt_.size())) << policy;
    std::vector<float> logits = seq.prefill(prompt_);
    EXPECT_LE(seq.capacity(), 36 + 10) << policy;  // snapkv, selecting once, grows by every new token
    EXPECT_LT(seq.allocated_bytes(), before / 4) << policy;
    for (int i = 0; i < 10; i++) logits = seq.step(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    for (float x : logits) ASSERT_TRUE(std::isfinite(x)) << policy;
    // Calls after steps 4 and 8 cut to 4 sinks + the 32 newest (176..207); 208, 209 came after.
    if (std::string(policy) == "streaming") EXPECT_EQ(seq.kept(1, 0), cat({range(0, 4), range(176, 210)}));
  }
}

TEST_F(TinyModel, StreamingPrefillBoundsMemoryAndLaCacheMatchesItsLadder) {
  CacheSpec spec;
  spec.policy = "lacache";
  spec.budget = "64";
  spec.params = {{"span", 2}};
  spec.streaming_prefill = true;
  spec.chunk = 1;  // the reference protocol: one token at a time, the ladder after each
  CachedSequence seq(*model_.model, spec, int(prompt_.size()), 0);
  seq.prefill(prompt_);
  auto expected = run_ladder({3, 64, 2, 0, 4}, int(prompt_.size()));
  for (int l = 0; l < 3; l++)
    for (int h = 0; h < 2; h++) EXPECT_EQ(seq.kept(l, h), expected[size_t(l)]) << "layer " << l;
  EXPECT_LE(seq.capacity(), 64 + 1 + 1);
}

TEST_F(TinyModel, ContinuousGenerationTenTimesTheBudgetKeepsMemoryFlat) {
  for (const char* policy : {"lacache", "streaming", "h2o"}) {
    CacheSpec spec;
    spec.policy = policy;
    spec.budget = "64";
    spec.streaming_prefill = true;
    CachedSequence seq(*model_.model, spec, 32, 1200);  // 1232 tokens: past max_position_embeddings (1024)
    std::vector<int32_t> prompt(prompt_.begin(), prompt_.begin() + 32);
    std::vector<float> logits = seq.prefill(prompt);
    const size_t allocated = seq.allocated_bytes();
    size_t max_kept = 0;
    for (int i = 0; i < 1200; i++) {
      logits = seq.step(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
      size_t kept = 0;
      for (size_t b : seq.kept_kv_bytes_per_layer()) kept += b;
      max_kept = std::max(max_kept, kept);
    }
    for (float x : logits) ASSERT_TRUE(std::isfinite(x)) << policy;
    EXPECT_EQ(seq.allocated_bytes(), allocated) << policy;
    // 3 layers x 2 heads x (K + V) x 16 dims x 4 bytes per kept token, at most budget + interval.
    EXPECT_LE(max_kept, size_t(3 * 2 * 2 * 16 * 4) * size_t(LadderCompactor({3, 64, 2, 0, 4}).max_kept() + 1)) << policy;
    EXPECT_EQ(seq.tokens_seen(), 1232);
  }
}

TEST(CpuBackend, CompactionReRotatesKeysToTheirNewSlot) {
  auto b = make_cpu_backend();
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000;
  std::vector<float> inv = rope_inv_freq(c);
  RopeTable rope;
  rope.inv_freq = b->alloc({4}, DType::F32);
  b->write(rope.inv_freq, inv.data(), 16);
  // As YaRN's attention factor: the keys carry it from their first rotation, and a re-rotation
  // (a pure turn) must not apply it again.
  rope.attention_scaling = 1.7f;
  // One head, keys for positions 0..5 rotated at their slot; keep slots {0, 3, 5}.
  KVCache cache = b->alloc_kv_cache(1, 1, 8, 6);
  std::vector<float> raw(6 * 8);
  for (size_t i = 0; i < raw.size(); i++) raw[i] = std::sin(float(i) * 0.7f) + 0.1f;
  Tensor k = b->alloc({6, 8}, DType::F32), v = b->alloc({6, 8}, DType::F32), pos = b->alloc({6}, DType::I32);
  b->write(k, raw.data(), raw.size() * 4);
  b->write(v, raw.data(), raw.size() * 4);
  std::vector<int32_t> p = range(0, 6);
  b->write(pos, p.data(), 24);
  b->rope(k, pos, rope, 8);
  b->kv_append(cache, 0, k, v, pos);
  Tensor keep = b->alloc({1, 6}, DType::I32), count = b->alloc({1}, DType::I32);
  std::vector<int32_t> keep_h = {0, 3, 5, 0, 0, 0}, count_h = {3};
  b->write(keep, keep_h.data(), 24);
  b->write(count, count_h.data(), 4);
  b->kv_compact(cache, 0, keep, count, {false, &rope});
  // Expected: raw keys of tokens 0, 3, 5 rotated at positions 0, 1, 2.
  Tensor want = b->alloc({3, 8}, DType::F32), want_pos = b->alloc({3}, DType::I32);
  std::vector<float> rows;
  for (int t : {0, 3, 5}) rows.insert(rows.end(), raw.begin() + t * 8, raw.begin() + t * 8 + 8);
  b->write(want, rows.data(), rows.size() * 4);
  std::vector<int32_t> np = {0, 1, 2};
  b->write(want_pos, np.data(), 12);
  b->rope(want, want_pos, rope, 8);
  std::vector<float> got = b->to_host_f32(cache.k[0]), expect = b->to_host_f32(want);
  for (int i = 0; i < 24; i++) EXPECT_NEAR(got[size_t(i)], expect[size_t(i)], 1e-5f) << i;
  EXPECT_EQ(cache.length.ptr<int32_t>()[0], 3);
  EXPECT_EQ(cache.position.ptr<int32_t>()[1], 3);  // the original position travels with the slot
  EXPECT_EQ(b->to_host_f32(cache.v[0])[8], raw[24]);
}

}  // namespace
}  // namespace kvlab
