// The CPU forward pass against Hugging Face transformers' fp32 logits (tests/golden, made by
// scripts/make_goldens.py from the checkpoints in datasets/models).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "cache/cached_sequence.h"
#include "model/generate.h"
#include "model/loaded_model.h"
#include "model/safetensors.h"
#include "golden_checkpoint.h"
#include "kv_slots.h"
#include "test_support.h"

namespace kvlab {
namespace {

constexpr float kLogitTolerance = 1e-4f;  // the bound: HF fp32 vs kvlab fp32

using testing::Golden;
using testing::load_golden;
using testing::model_dir;
using testing::written_slots;

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class ModelGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (const std::string why = testing::golden_missing(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
};

TEST_P(ModelGolden, PrefillLogitsAndGreedyTokensMatchTransformers) {
  Golden g = load_golden(GetParam());
  auto backend = make_cpu_backend();
  LoadedModel m = load_model(model_dir(GetParam()), *backend, 512);
  CachedSequence seq(*m.model, CacheSpec{}, int(g.prompt.size()), int(g.greedy.size()));
  GenerateOptions opt;
  opt.max_new_tokens = int(g.greedy.size());
  opt.keep_logits = true;
  GenerateResult r = generate_greedy(seq, g.prompt, opt);
  r.logits.resize(g.logits.size());  // the prompt positions; HF's goldens have no decode-step logits
  float err = max_abs_diff(r.logits, g.logits);
  std::printf("%s: max |logit - HF| over %zu positions = %.3g\n", GetParam().c_str(), g.prompt.size(), err);
  EXPECT_LE(err, kLogitTolerance);
  EXPECT_EQ(r.tokens, g.greedy);
}

TEST_P(ModelGolden, ChunkedPrefillThenTokenByTokenDecodeMatchesTransformers) {
  Golden g = load_golden(GetParam());
  auto backend = make_cpu_backend();
  LoadedModel m = load_model(model_dir(GetParam()), *backend, 512);
  KVCache cache = m.model->new_cache(int(g.prompt.size()));
  const size_t vocab = size_t(m.config.vocab_size);
  std::vector<float> logits;
  // Uneven chunks (100 + 77) then one token at a time: every path through the cache.
  std::vector<size_t> cuts = {0, 100, 177};
  for (size_t i = 178; i <= g.prompt.size(); i++) cuts.push_back(i);
  for (size_t c = 0; c + 1 < cuts.size(); c++) {
    std::vector<int32_t> ids(g.prompt.begin() + long(cuts[c]), g.prompt.begin() + long(cuts[c + 1]));
    std::vector<int32_t> pos(ids.size());
    for (size_t i = 0; i < ids.size(); i++) pos[i] = int32_t(cuts[c] + i);
    std::vector<float> out = backend->to_host_f32(m.model->forward(ids, pos, cache, Logits::All));
    ASSERT_EQ(out.size(), ids.size() * vocab);
    logits.insert(logits.end(), out.begin(), out.end());
  }
  float err = max_abs_diff(logits, g.logits);
  std::printf("%s (chunked): max |logit - HF| = %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, kLogitTolerance);
}

// A prefill that wants no logits, or the last token's, runs the last layer's attention, o and MLP
// on those rows alone: the last logits still match HF, and the cache (every layer's K and V, and
// the lengths) is bitwise the one a forward with every row's logits leaves, so decode goes on alike.
TEST_P(ModelGolden, PrefillWithoutEveryRowsLogitsKeepsLastLogitsAndCache) {
  Golden g = load_golden(GetParam());
  auto backend = make_cpu_backend();
  LoadedModel m = load_model(model_dir(GetParam()), *backend, 512);
  const int prompt = int(g.prompt.size()), vocab = m.config.vocab_size;
  KVCache pruned = m.model->new_cache(prompt + 1), full = m.model->new_cache(prompt + 1);
  const std::vector<int> cuts = {0, 100, 177, prompt};
  std::vector<float> last;
  for (size_t c = 0; c + 1 < cuts.size(); c++) {
    const std::vector<int32_t> ids(g.prompt.begin() + cuts[c], g.prompt.begin() + cuts[c + 1]);
    std::vector<int32_t> pos(ids.size());
    for (size_t i = 0; i < ids.size(); i++) pos[i] = int32_t(cuts[c] + int(i));
    const bool final_chunk = c + 2 == cuts.size();
    Tensor t = m.model->forward(ids, pos, pruned, final_chunk ? Logits::Last : Logits::None);
    if (final_chunk) last = backend->to_host_f32(t);
    m.model->forward(ids, pos, full, Logits::All);
  }
  ASSERT_EQ(last.size(), size_t(vocab));
  const std::vector<float> hf_last(g.logits.end() - vocab, g.logits.end());
  EXPECT_LE(max_abs_diff(last, hf_last), kLogitTolerance);
  auto slots = [&](const Tensor& t) { return written_slots(*backend, t, prompt); };
  for (size_t l = 0; l < size_t(m.config.num_layers); l++) {
    EXPECT_EQ(slots(pruned.k[l]), slots(full.k[l])) << "layer " << l;
    EXPECT_EQ(slots(pruned.v[l]), slots(full.v[l])) << "layer " << l;
  }
  EXPECT_EQ(pruned.host_length, full.host_length);
  const std::vector<int32_t> next = {g.greedy[0]}, next_pos = {prompt};
  const std::vector<float> a = backend->to_host_f32(m.model->forward(next, next_pos, pruned, Logits::Last)),
                           b = backend->to_host_f32(m.model->forward(next, next_pos, full, Logits::Last));
  EXPECT_EQ(a, b);
}

// Each layer's q, k, v (and their biases) and gate, up lie in one allocation, in order, so that
// a backend may take each group as one matmul (Backend::attention_input, Backend::mlp); the
// golden tests above run the model built from them.
TEST_P(ModelGolden, StacksEachLayersProjectionsInOneAllocation) {
  auto backend = make_cpu_backend();
  LoadedModel m = load_model(model_dir(GetParam()), *backend, 64);
  auto follows = [](const Tensor& before, const Tensor& t) {
    return t.storage == before.storage && t.data == static_cast<const char*>(before.data) + before.bytes();
  };
  for (const LayerWeights& l : m.model->weights().layers) {
    EXPECT_TRUE(follows(l.q, l.k) && follows(l.k, l.v));
    EXPECT_TRUE(follows(l.gate, l.up));
    EXPECT_FALSE(follows(l.v, l.o));
    EXPECT_EQ(m.config.attention_bias, !l.q_bias.empty());
    if (m.config.attention_bias) EXPECT_TRUE(follows(l.q_bias, l.k_bias) && follows(l.k_bias, l.v_bias));
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, ModelGolden, ::testing::Values("llama", "qwen2", "qwen3", "qwen3-yarn"),
                         [](const auto& info) { return info.param == "qwen3-yarn" ? "qwen3_yarn" : info.param; });

}  // namespace
}  // namespace kvlab
