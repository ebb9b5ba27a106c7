// The apps end to end, as the README uses them.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "test_support.h"

namespace kvlab {
namespace {

using nlohmann::json;
using testing::run_command;

std::string tiny(const std::string& arch) { return testing::source_dir() + "/datasets/models/tiny-random-" + arch; }

TEST(Apps, InspectReportsShapesAndPlan) {
  auto r = run_command(testing::bin_dir() + "/kvlab-inspect " + tiny("qwen3") + " --ctx 1000 --backend cuda --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["architecture"], "Qwen3ForCausalLM");
  EXPECT_EQ(j["head_dim"], 32);
  // K per token per layer: 2 KV heads x 32 dims x 2 bytes (bf16).
  EXPECT_EQ(j["plan"]["k_bytes_per_token_per_layer"], 128);
  EXPECT_EQ(j["plan"]["context_tokens"], 1000);
  auto text = run_command(testing::bin_dir() + "/kvlab-inspect " + tiny("llama"));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("memory plan"), std::string::npos);
}

TEST(Apps, GenerateReproducesTheGoldenGreedyTokensAndLogits) {
  auto f = SafetensorsFile::open(testing::golden_dir() + "/qwen2.safetensors");
  const TensorRecord& prompt = f->tensors().at("prompt_ids");
  const TensorRecord& greedy = f->tensors().at("greedy_ids");
  const int32_t* pid = static_cast<const int32_t*>(prompt.data);
  std::string ids;
  for (int64_t i = 0; i < prompt.numel(); i++) ids += (i ? "," : "") + std::to_string(pid[i]);
  std::string dump = testing::temp_dir() + "/logits.json";
  auto r = run_command(testing::bin_dir() + "/kvlab-generate --model " + tiny("qwen2") + " --prompt-ids " + ids +
                       " --max-new-tokens 8 --ignore-eos --json --dump-logits " + dump);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json out = json::parse(r.out);
  std::vector<int32_t> want(static_cast<const int32_t*>(greedy.data), static_cast<const int32_t*>(greedy.data) + 8);
  EXPECT_EQ(out["generated_ids"].get<std::vector<int32_t>>(), want);
  json d = json::parse(testing::read_file(dump));
  // Prompt positions plus the 7 fed generated tokens.
  ASSERT_EQ(d["logits"].size(), size_t(prompt.numel()) + 7);
  const float* golden = static_cast<const float*>(f->tensors().at("logits").data);
  const size_t vocab = d["logits"][0].size();
  float worst = 0;
  for (size_t p = 0; p < size_t(prompt.numel()); p++)
    for (size_t v = 0; v < vocab; v++)
      worst = std::max(worst, std::abs(d["logits"][p][v].get<float>() - golden[p * vocab + v]));
  EXPECT_LE(worst, 1e-4f);
}

TEST(Apps, EvalWritesASchemaVersionedReport) {
  std::string out = testing::temp_dir() + "/r.json";
  auto r = run_command(testing::bin_dir() + "/kvlab-eval --config " + testing::source_dir() +
                       "/configs/quickstart.json --context 200 --samples 1 --depths 0,1 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(testing::read_file(out));
  EXPECT_EQ(j["schema"], "kvlab.report");
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["model"]["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["model"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["config"]["passkey"]["context_tokens"], 200);
  EXPECT_EQ(j["metrics"]["samples"], 2);
  for (const json& s : j["metrics"]["per_sample"]) EXPECT_LE(s["prompt_tokens"].get<int>(), 200);
  EXPECT_FALSE(j["environment"]["git_sha"].get<std::string>().empty());
  EXPECT_GT(j["metrics"]["decode_tokens_per_s"].get<double>(), 0.0);
}

TEST(Apps, HelpExplainsEveryFlag) {
  for (const char* app : {"kvlab-eval", "kvlab-generate", "kvlab-inspect", "kvlab-tokenize"}) {
    auto r = run_command(testing::bin_dir() + "/" + app + " --help");
    EXPECT_EQ(r.exit_code, 0) << app;
    EXPECT_NE(r.out.find("--"), std::string::npos) << app;
  }
}

}  // namespace
}  // namespace kvlab
