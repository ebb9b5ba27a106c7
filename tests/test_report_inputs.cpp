// Every report records the sha256 of what the run read: model files, tokenizer, the resolved
// config and every dataset file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "run/report.h"
#include "test_support.h"

namespace kvlab {
namespace {

TEST(ReportInputs, HashesEveryInput) {
  const std::string dir = testing::temp_dir();
  testing::write_file(dir + "/a.jsonl", "{\"x\": 1}\n");
  testing::write_file(dir + "/b.txt", "text");
  testing::write_file(dir + "/tokenizer.json", "{}");
  const nlohmann::json config = {{"task", "qa"}, {"b", 2}, {"a", 1}};
  const nlohmann::json h = input_hashes("abc", {dir + "/tokenizer.json", {dir + "/a.jsonl", dir + "/b.txt"}}, config);
  EXPECT_EQ(h["model_sha256"], "abc");
  EXPECT_EQ(h["tokenizer_sha256"], sha256_hex("{}"));
  EXPECT_EQ(h["datasets"][dir + "/a.jsonl"], sha256_hex("{\"x\": 1}\n"));
  EXPECT_EQ(h["datasets"][dir + "/b.txt"], sha256_hex("text"));
  // Canonical: compact, keys sorted, whatever order the config was built in.
  EXPECT_EQ(h["config_sha256"], sha256_hex(R"({"a":1,"b":2,"task":"qa"})"));
}

TEST(ReportInputs, AbsentInputsAreNull) {
  const nlohmann::json h = input_hashes("", {}, nlohmann::json::object());
  EXPECT_TRUE(h["model_sha256"].is_null());
  EXPECT_TRUE(h["tokenizer_sha256"].is_null());
  EXPECT_TRUE(h["datasets"].empty());
}

TEST(ReportInputs, UnreadableDatasetIsAnError) {
  EXPECT_THROW(input_hashes("", {"", {testing::temp_dir() + "/missing.jsonl"}}, nlohmann::json::object()), std::exception);
}

TEST(ReportInputs, EvalReportCarriesThem) {
  const std::string out = testing::temp_dir() + "/report.json";
  const std::string model = testing::source_dir() + "/datasets/models/tiny-random-llama";
  auto r = testing::run_command(testing::bin_dir() + "/kvlab-eval --model " + model +
                                " --context 256 --depths 0.5 --samples 1 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(testing::read_file(out));
  const nlohmann::json& in = report["inputs"];
  EXPECT_EQ(in["model_sha256"], report["model"]["sha256"]);
  EXPECT_EQ(in["tokenizer_sha256"],
            sha256_file(model + "/tokenizer.json"));
  EXPECT_EQ(in["config_sha256"], sha256_hex(report["config"].dump()));
  EXPECT_TRUE(in["datasets"].is_object());
}

}  // namespace
}  // namespace kvlab
