// YaRN RoPE scaling (Qwen2.5 / Qwen3 past 32K): the config block, the frequencies band by band,
// the attention factor reaching the model, and the context window it opens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "model/config.h"
#include "model/rope.h"
#include "model/transformer.h"
#include "test_support.h"

namespace kvlab {
namespace {

using nlohmann::json;
using testing::error_of;

// Qwen2.5-7B-Instruct's config.json with the block its model card adds for 128K contexts.
json qwen25_yarn() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "vocab_size": 152064, "hidden_size": 3584,
    "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "sliding_window": 131072, "use_sliding_window": false,
    "max_window_layers": 28, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}})");
}

ModelConfig parse(const json& j) { return parse_model_config(j, "m/config.json"); }

TEST(Yarn, QwenModelCardBlock) {
  const ModelConfig c = parse(qwen25_yarn());
  EXPECT_EQ(c.rope_scaling.type, "yarn");
  EXPECT_EQ(c.rope_scaling.original_max_position, 32768);
  EXPECT_DOUBLE_EQ(c.rope_scaling.attention_factor, 0.1 * std::log(4.0) + 1.0);
  EXPECT_FLOAT_EQ(rope_attention_scaling(c), 1.1386294f);
  // The pretrained length stays in max_position_embeddings; YaRN opens four times as much.
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.context_window(), 131072);
  EXPECT_NE(c.context_window_text().find("131072 tokens: YaRN's original_max_position_embeddings 32768 x factor 4"),
            std::string::npos)
      << c.context_window_text();
}

// head_dim 128, theta 1e6, 32768 positions: 32 turns at dimension 23.6, one turn at 39.7, so
// pairs 0-23 keep their frequency, 40-63 are slowed four times, and 24-39 blend.
TEST(Yarn, FrequenciesKeptScaledAndBlendedByBand) {
  const ModelConfig c = parse(qwen25_yarn());
  ModelConfig plain = c;
  plain.rope_scaling = RopeScaling{};
  const std::vector<float> yarn = rope_inv_freq(c), base = rope_inv_freq(plain);
  ASSERT_EQ(yarn.size(), 64u);
  for (int i = 0; i <= 23; i++) EXPECT_EQ(yarn[size_t(i)], base[size_t(i)]) << i;
  for (int i = 40; i < 64; i++) EXPECT_FLOAT_EQ(yarn[size_t(i)], base[size_t(i)] / 4) << i;
  for (int i = 24; i < 40; i++) {
    const double ramp = (i - 23) / 17.0;  // band [23, 40] after rounding outwards
    EXPECT_NEAR(yarn[size_t(i)], base[size_t(i)] * (ramp / 4 + (1 - ramp)), 1e-6 * base[size_t(i)]) << i;
  }
}

TEST(Yarn, WithoutTruncationTheBandKeepsItsFractionalEdges) {
  json j = qwen25_yarn();
  j["rope_scaling"]["truncate"] = false;
  const ModelConfig c = parse(j);
  const std::vector<float> yarn = rope_inv_freq(c);
  const double low = 23.5959476083381, high = 39.6508807104171;  // from the closed form above
  ModelConfig plain = c;
  plain.rope_scaling = RopeScaling{};
  const std::vector<float> base = rope_inv_freq(plain);
  for (int i : {23, 24, 30, 39, 40}) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    EXPECT_NEAR(yarn[size_t(i)], base[size_t(i)] * (ramp / 4 + (1 - ramp)), 1e-6 * base[size_t(i)]) << i;
  }
}

TEST(Yarn, AttentionFactorGivenOrFromMscale) {
  json j = qwen25_yarn();
  j["rope_scaling"]["attention_factor"] = 1.5;
  EXPECT_DOUBLE_EQ(parse(j).rope_scaling.attention_factor, 1.5);
  j = qwen25_yarn();
  j["rope_scaling"]["mscale"] = 0.707;  // DeepSeek's pair: the ratio of two mscale terms
  j["rope_scaling"]["mscale_all_dim"] = 1.0;
  const double m = 0.1 * 0.707 * std::log(4.0) + 1, all = 0.1 * std::log(4.0) + 1;
  EXPECT_DOUBLE_EQ(parse(j).rope_scaling.attention_factor, m / all);
  j = qwen25_yarn();
  j["rope_scaling"]["factor"] = 1.0;  // no stretch: no attention factor either
  EXPECT_DOUBLE_EQ(parse(j).rope_scaling.attention_factor, 1.0);
}

// transformers 5 spelling, no original length: it is max_position_embeddings (Qwen3's 40960).
TEST(Yarn, Transformers5RopeParametersWithoutOriginalLength) {
  json j = qwen25_yarn();
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["max_position_embeddings"] = 40960;
  j["head_dim"] = 128;
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"rope_theta", 1000000.0}};
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.rope_scaling.original_max_position, 40960);
  EXPECT_EQ(c.context_window(), 163840);
}

TEST(Yarn, BadBlocksNameTheField) {
  json j = qwen25_yarn();
  j["rope_scaling"].erase("factor");
  EXPECT_NE(error_of([&] { parse(j); }).find("rope_scaling.factor"), std::string::npos);
  j = qwen25_yarn();
  j["rope_scaling"]["beta_fast"] = "fast";
  EXPECT_NE(error_of([&] { parse(j); }).find("\"beta_fast\""), std::string::npos);
  j = qwen25_yarn();
  j["rope_scaling"]["truncate"] = 1;
  EXPECT_NE(error_of([&] { parse(j); }).find("\"truncate\""), std::string::npos);
  j = qwen25_yarn();
  j["rope_theta"] = 1.0;  // log(theta) finds the band: no band at theta 1
  EXPECT_NE(error_of([&] { parse(j); }).find("\"rope_theta\" must be above 1"), std::string::npos);
  j = qwen25_yarn();
  j["rope_scaling"]["attention_factor"] = 1e300;  // inf in fp32
  EXPECT_NE(error_of([&] { parse(j); }).find("\"rope_scaling.attention_factor\" must be at most 1e6"),
            std::string::npos);
  j = qwen25_yarn();
  j["rope_scaling"]["factor"] = 1e-300;  // 0 in fp32: frequencies divided by it
  EXPECT_NE(error_of([&] { parse(j); }).find("\"rope_scaling.factor\" must be between"), std::string::npos);
  j = qwen25_yarn();
  j["rope_scaling"]["type"] = "longrope";
  const std::string err = error_of([&] { parse(j); });
  EXPECT_NE(err.find("longrope"), std::string::npos) << err;
  EXPECT_NE(err.find("\"yarn\""), std::string::npos) << err;
}

// A model card's rope_scaling added to a config that transformers 5 saved with rope_parameters:
// kvlab reads both and refuses them when they disagree, rather than letting one win silently.
TEST(Yarn, RopeScalingBesideRopeParametersMustAgree) {
  json j = qwen25_yarn();
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  const std::string err = error_of([&] { parse(j); });
  EXPECT_NE(err.find("\"rope_scaling\""), std::string::npos) << err;
  EXPECT_NE(err.find("disagrees with rope_parameters"), std::string::npos) << err;
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768},
                          {"rope_theta", 1000000.0}};
  EXPECT_EQ(parse(j).rope_scaling.type, "yarn");
}

TEST(Yarn, WindowIsMaxPositionEmbeddingsOtherwise) {
  json j = qwen25_yarn();
  j.erase("rope_scaling");
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.context_window(), 32768);
  EXPECT_NE(c.context_window_text().find("32768 tokens: max_position_embeddings"), std::string::npos);
}

// Both backends multiply cos and sin by the attention factor, for q and k alike, so attention
// logits grow by its square. With factor 1 (frequencies untouched) and attention_factor a, a
// Qwen3 model must equal the same model without scaling whose q and k norm weights (applied
// just before the rotation, which is linear) are multiplied by a.
TEST(Yarn, AttentionFactorScalesQueriesAndKeysBeforeAttention) {
  json j = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", 96}, {"hidden_size", 64},
            {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"head_dim", 32}, {"max_position_embeddings", 256},
            {"rope_theta", 10000.0}, {"tie_word_embeddings", false}};
  const ModelConfig plain = parse(j);
  const float a = 1.7f;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 1.0}, {"attention_factor", a}};
  const ModelConfig scaled = parse(j);
  ASSERT_EQ(rope_inv_freq(scaled), rope_inv_freq(plain));

  const std::unique_ptr<Backend> cpu = make_cpu_backend();
  Backend& backend = *cpu;
  auto logits = [&](const ModelConfig& c, float norm_scale) {
    ModelWeights w = random_weights(c, backend, 7);
    for (LayerWeights& l : w.layers)
      for (Tensor* t : {&l.q_norm, &l.k_norm}) {
        std::vector<float> v(size_t(t->numel()));
        backend.read(*t, v.data(), v.size() * sizeof(float));
        for (float& x : v) x *= norm_scale;
        backend.write(*t, v.data(), v.size() * sizeof(float));
      }
    Transformer model(c, backend, std::move(w), 64);
    KVCache cache = model.new_cache(64);
    std::vector<int32_t> ids(40), positions(40);
    for (int i = 0; i < 40; i++) ids[size_t(i)] = (i * 37 + 5) % 96, positions[size_t(i)] = i;
    Tensor out = model.forward(ids, positions, cache, Logits::All);
    std::vector<float> host(size_t(out.numel()));
    backend.read(out, host.data(), host.size() * sizeof(float));
    return host;
  };
  const std::vector<float> got = logits(scaled, 1.0f), want = logits(plain, a), unscaled = logits(plain, 1.0f);
  float worst = 0, moved = 0;
  for (size_t i = 0; i < got.size(); i++) {
    worst = std::max(worst, std::abs(got[i] - want[i]));
    moved = std::max(moved, std::abs(unscaled[i] - want[i]));
  }
  EXPECT_LT(worst, 1e-4f);
  EXPECT_GT(moved, 100 * worst);  // the factor matters at these weights, so the match means something
}

// Through kvlab-eval, as a user meets it: with max_position_embeddings cut to 512, the YaRN
// checkpoint still takes a 900-token passkey prompt (its window is 256 x 4 = 1024), and refuses
// 1100 with one line that says where the window comes from.
TEST(Yarn, TasksTakePromptsUpToTheWindow) {
  namespace fs = std::filesystem;
  const std::string dir = testing::temp_dir() + "/yarn";
  fs::copy(testing::source_dir() + "/datasets/models/tiny-random-qwen3-yarn", dir, fs::copy_options::recursive);
  json config = json::parse(testing::read_file(dir + "/config.json"));
  config["max_position_embeddings"] = 512;
  testing::write_file(dir + "/config.json", config.dump(2));
  auto eval = [&](int context) {
    return testing::run_command(testing::bin_dir() + "/kvlab-eval --model " + dir + " --samples 1 --depths 0.5 " +
                                "--context " + std::to_string(context) + " --out " + dir + "/r" +
                                std::to_string(context) + ".json");
  };
  const testing::CommandResult within = eval(900), beyond = eval(1100);
  EXPECT_EQ(within.exit_code, 0) << within.err;
  EXPECT_EQ(beyond.exit_code, 2) << beyond.err;
  EXPECT_NE(beyond.err.find("1024 tokens: YaRN's original_max_position_embeddings 256 x factor 4"), std::string::npos)
      << beyond.err;
  EXPECT_FALSE(fs::exists(dir + "/r1100.json"));
}

}  // namespace
}  // namespace kvlab
