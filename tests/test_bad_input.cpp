// Bad input through the apps, as a user meets it: exit code 2, exactly one line on stderr
// naming the file and the problem, and no report written.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using testing::run_command;

std::string copy_model(const std::string& arch = "llama") {
  std::string dir = testing::temp_dir() + "/model";
  fs::copy(testing::source_dir() + "/datasets/models/tiny-random-" + arch, dir, fs::copy_options::recursive);
  return dir;
}

struct Outcome {
  testing::CommandResult result;
  bool report_written;
};

// Runs kvlab-eval on `model_dir` with a report path that must stay absent.
Outcome eval_on(const std::string& model_dir, const std::string& flags = "--context 128") {
  std::string out = testing::temp_dir() + "/report.json";
  auto r = run_command(testing::bin_dir() + "/kvlab-eval --model " + model_dir + " --samples 1 --depths 0.5 --out " +
                       out + " " + flags);
  return {r, fs::exists(out)};
}

void expect_clean_failure(const Outcome& o, const std::string& must_mention) {
  EXPECT_EQ(o.result.exit_code, 2) << o.result.err;
  EXPECT_FALSE(o.report_written);
  // One line: the error itself, no stack of messages.
  EXPECT_EQ(std::count(o.result.err.begin(), o.result.err.end(), '\n'), 1) << o.result.err;
  EXPECT_NE(o.result.err.find(must_mention), std::string::npos) << o.result.err;
}

std::string shard(const std::string& dir) { return dir + "/model-00001-of-00002.safetensors"; }

TEST(BadInput, TruncatedSafetensors) {
  std::string dir = copy_model();
  fs::resize_file(shard(dir), fs::file_size(shard(dir)) / 2);
  expect_clean_failure(eval_on(dir), "model-00001-of-00002.safetensors");
}

TEST(BadInput, HeaderLengthPastEndOfFile) {
  std::string dir = copy_model();
  std::string bytes = testing::read_file(shard(dir));
  uint64_t huge = uint64_t(bytes.size()) * 4;
  std::memcpy(bytes.data(), &huge, 8);
  testing::write_file(shard(dir), bytes);
  expect_clean_failure(eval_on(dir), "runs past the end");
}

TEST(BadInput, CorruptHeaderBytes) {
  std::string dir = copy_model();
  std::string bytes = testing::read_file(shard(dir));
  for (size_t i = 8; i < 40; i++) bytes[i] = '\x7f';
  testing::write_file(shard(dir), bytes);
  expect_clean_failure(eval_on(dir), "not valid JSON");
}

TEST(BadInput, ShapesDisagreeWithConfig) {
  std::string dir = copy_model();
  nlohmann::json cfg = nlohmann::json::parse(testing::read_file(dir + "/config.json"));
  cfg["intermediate_size"] = 192;
  testing::write_file(dir + "/config.json", cfg.dump());
  expect_clean_failure(eval_on(dir), "but the config needs");
}

TEST(BadInput, MissingTensor) {
  std::string dir = copy_model();
  std::string index_path = dir + "/model.safetensors.index.json";
  nlohmann::json index = nlohmann::json::parse(testing::read_file(index_path));
  index["weight_map"].erase("model.layers.1.mlp.down_proj.weight");
  testing::write_file(index_path, index.dump());
  expect_clean_failure(eval_on(dir), "model.layers.1.mlp.down_proj.weight");
}

TEST(BadInput, InvalidConfigJson) {
  std::string dir = copy_model();
  testing::write_file(dir + "/config.json", "{\"architectures\": [\"LlamaForCausalLM\"], ");
  expect_clean_failure(eval_on(dir), "config.json");
}

TEST(BadInput, UnsupportedArchitecture) {
  std::string dir = copy_model();
  nlohmann::json cfg = nlohmann::json::parse(testing::read_file(dir + "/config.json"));
  cfg["architectures"] = {"GPT2LMHeadModel"};
  testing::write_file(dir + "/config.json", cfg.dump());
  expect_clean_failure(eval_on(dir), "GPT2LMHeadModel");
}

TEST(BadInput, NotAModelDirectory) {
  expect_clean_failure(eval_on(testing::temp_dir()), "config.json");
}

TEST(BadInput, NonUtf8Prompt) {
  auto r = run_command(testing::bin_dir() + "/kvlab-generate --max-new-tokens 2 --prompt $(printf 'ab\\377cd')");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(BadInput, ConfigFileWithUnknownKey) {
  std::string cfg = testing::temp_dir() + "/bad.json";
  testing::write_file(cfg, R"({"task": "passkey", "contxt": 512})");
  auto o = eval_on(testing::source_dir() + "/datasets/models/tiny-random-llama", "--config " + cfg);
  expect_clean_failure(o, "contxt");
}

TEST(BadInput, UsageErrorsExitTwo) {
  auto o = eval_on(testing::source_dir() + "/datasets/models/tiny-random-llama", "--context 128 --context 256");
  expect_clean_failure(o, "--context");
  o = eval_on(testing::source_dir() + "/datasets/models/tiny-random-llama", "--no-such-flag");
  expect_clean_failure(o, "no-such-flag");
}

TEST(BadInput, UnknownCachePolicyOrParameter) {
  auto o = eval_on(testing::source_dir() + "/datasets/models/tiny-random-llama", "--cache lacahe --budget 64");
  expect_clean_failure(o, "lacache");  // the message lists the valid names
  o = eval_on(testing::source_dir() + "/datasets/models/tiny-random-llama",
              "--cache lacache --budget 64 --cache-param spam=3");
  expect_clean_failure(o, "span");
  o = eval_on(testing::source_dir() + "/datasets/models/tiny-random-llama", "--cache streaming --budget 4");
  expect_clean_failure(o, "sinks");
}

TEST(BadInput, QaPromptTemplateWithoutItsContext) {
  const std::string out = testing::temp_dir() + "/report.json";
  const Outcome o{run_command(testing::bin_dir() + "/kvlab-eval --model " + testing::source_dir() +
                              "/datasets/models/tiny-random-llama --task qa --prompt-template 'Question: {question}' "
                              "--out " + out),
                  fs::exists(out)};
  expect_clean_failure(o, "{context} exactly once");
}

TEST(BadInput, MalformedHfOverridesAndPromptRepetitions) {
  const std::string model = testing::source_dir() + "/datasets/models/tiny-random-llama";
  expect_clean_failure(eval_on(model, "--context 128 --hf-overrides '{\"rope_theta\": '"), "--hf-overrides: malformed JSON");
  expect_clean_failure(eval_on(model, "--context 128 --hf-overrides '{\"vocab_size\": 9}'"),
                       "\"vocab_size\" cannot be overridden");
  const auto r = run_command(testing::bin_dir() + "/kvlab-bench --model " + model +
                             " --backend cpu --contexts 40 --prompt-reps 0");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--prompt-reps"), std::string::npos) << r.err;
}

TEST(BadInput, ContextBeyondTheModel) {
  auto o = eval_on(testing::source_dir() + "/datasets/models/tiny-random-llama", "--context 4096");
  expect_clean_failure(o, "max_position_embeddings");
}

}  // namespace
}  // namespace kvlab
