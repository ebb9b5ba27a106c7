// config.json parsing: the three architectures' quirks, and errors that name the field.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/rope.h"

namespace kvlab {
namespace {

using nlohmann::json;

json llama_json() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0, "tie_word_embeddings": false, "hidden_act": "silu",
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
}

std::string parse_error(const json& j) {
  try {
    parse_model_config(j, "m/config.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitBadInput);
    return e.what();
  }
  return "";
}

TEST(Config, Llama31) {
  ModelConfig c = parse_model_config(llama_json(), "config.json");
  EXPECT_EQ(c.arch, Architecture::Llama);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
}

TEST(Config, Llama3RopeScalingKeepsHighFrequenciesAndSlowsLowOnes) {
  ModelConfig c = parse_model_config(llama_json(), "config.json");
  std::vector<float> scaled = rope_inv_freq(c);
  c.rope_scaling = RopeScaling{};
  std::vector<float> plain = rope_inv_freq(c);
  EXPECT_FLOAT_EQ(scaled.front(), plain.front());          // wavelength 2*pi: untouched
  EXPECT_FLOAT_EQ(scaled.back(), plain.back() / 8.0f);      // longest wavelength: divided by factor
  int blended = 0;
  for (size_t i = 0; i < plain.size(); i++)
    if (scaled[i] < plain[i] && scaled[i] > plain[i] / 8.0f) blended++;
  EXPECT_GT(blended, 0);
}

TEST(Config, Qwen2HasBiasAndTiedEmbeddingsByDefault) {
  json j = llama_json();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j.erase("rope_scaling");
  j.erase("tie_word_embeddings");
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(Config, Qwen3ExplicitHeadDimAndTransformers5RopeParameters) {
  json j = llama_json();
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["hidden_size"] = 2560;
  j["head_dim"] = 128;
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.q_dim(), 32 * 128);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1000000.0);
}

TEST(Config, ErrorsNameTheField) {
  json j = llama_json();
  j["architectures"] = {"MistralForCausalLM"};
  std::string err = parse_error(j);
  EXPECT_NE(err.find("architectures"), std::string::npos) << err;
  EXPECT_NE(err.find("MistralForCausalLM"), std::string::npos) << err;
  EXPECT_NE(err.find("m/config.json"), std::string::npos) << err;

  j = llama_json();
  j["hidden_size"] = "big";
  EXPECT_NE(parse_error(j).find("\"hidden_size\""), std::string::npos);

  j = llama_json();
  j.erase("vocab_size");
  EXPECT_NE(parse_error(j).find("\"vocab_size\" is missing"), std::string::npos);

  j = llama_json();
  j["num_key_value_heads"] = 5;
  EXPECT_NE(parse_error(j).find("num_key_value_heads"), std::string::npos);

  j = llama_json();
  j["rope_scaling"]["rope_type"] = "longrope";
  EXPECT_NE(parse_error(j).find("longrope"), std::string::npos);

  j = llama_json();
  j["hidden_act"] = "gelu";
  EXPECT_NE(parse_error(j).find("hidden_act"), std::string::npos);

  EXPECT_NE(parse_error(json::array()).find("not a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace kvlab
