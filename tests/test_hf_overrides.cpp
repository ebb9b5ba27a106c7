// --hf-overrides: settings merged into config.json without editing the checkpoint (YaRN for
// Qwen past 32K), in the library, through the apps, in reports and in sweeps.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/shapes.h"
#include "sweep_fixture.h"
#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::error_of;

std::string qwen3() { return testing::source_dir() + "/datasets/models/tiny-random-qwen3"; }
std::string qwen3_yarn() { return testing::source_dir() + "/datasets/models/tiny-random-qwen3-yarn"; }

// What scripts/derive_yarn_model.py writes into tiny-random-qwen3-yarn's config.json.
const json kYarn = {{"rope_parameters",
                     {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 256}}}};

TEST(HfOverrides, MergeIntoTheConfigKeepingWhatTheyLeaveOut) {
  const ModelConfig c = load_model_config(qwen3(), kYarn);
  EXPECT_EQ(c.rope_scaling.type, "yarn");
  EXPECT_DOUBLE_EQ(c.rope_theta, 1000000.0);  // rope_parameters.rope_theta survives the merge
  EXPECT_EQ(c.context_window(), 1024);
  // Objects merge key by key: rope_type default turns YaRN off whatever else the block holds.
  const ModelConfig plain = load_model_config(qwen3_yarn(), {{"rope_parameters", {{"rope_type", "default"}}}});
  EXPECT_EQ(plain.rope_scaling.type, "default");
  EXPECT_EQ(load_model_config(qwen3(), {{"max_position_embeddings", 4096}}).max_position_embeddings, 4096);
  EXPECT_EQ(shape_config("qwen2.5-7b", {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}}).context_window(),
            4 * 131072);
}

TEST(HfOverrides, ShapeKeysAndBadValuesAreRefusedNamingThem) {
  std::string err = error_of([] { load_model_config(qwen3(), {{"num_hidden_layers", 8}}); });
  EXPECT_NE(err.find("\"num_hidden_layers\" cannot be overridden"), std::string::npos) << err;
  err = error_of([] { load_model_config(qwen3(), json::array({1})); });
  EXPECT_NE(err.find("must be a JSON object"), std::string::npos) << err;
  // A bad value is reported against the merged config, saying the overrides took part.
  err = error_of([] { load_model_config(qwen3(), {{"rope_parameters", {{"rope_type", "yarn"}}}}); });
  EXPECT_NE(err.find("with --hf-overrides"), std::string::npos) << err;
  EXPECT_NE(err.find("rope_scaling.factor"), std::string::npos) << err;
}

std::vector<float> dumped_logits(const std::string& model, const std::string& flags) {
  const std::string dump = testing::temp_dir() + "/logits.json";
  const auto r = testing::run_command(testing::bin_dir() + "/kvlab-generate --model " + model +
                                      " --prompt-ids 5,17,99,3,250,41,7,300 --max-new-tokens 4 --dump-logits " + dump +
                                      " " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const json dumped = json::parse(testing::read_file(dump));
  std::vector<float> all;
  for (const json& row : dumped["logits"])
    for (const json& x : row) all.push_back(x.get<float>());
  return all;
}

// The override on qwen3's checkpoint is the YaRN checkpoint: the same logits to the bit, and not
// those of the checkpoint without it.
TEST(HfOverrides, GenerateUnderOverridesEqualsTheEditedCheckpoint) {
  const std::vector<float> overridden = dumped_logits(qwen3(), "--hf-overrides '" + kYarn.dump() + "'");
  ASSERT_FALSE(overridden.empty());
  EXPECT_EQ(overridden, dumped_logits(qwen3_yarn(), ""));
  EXPECT_NE(overridden, dumped_logits(qwen3(), ""));
}

TEST(HfOverrides, EvalConfigKeyReachesTheReportAndSweepsGridOverThem) {
  const std::string dir = testing::temp_dir();
  const json config = {{"model", qwen3()}, {"task", "passkey"}, {"context", 200}, {"samples", 1},
                       {"depths", {0.5}},  {"hf_overrides", kYarn}};
  testing::write_file(dir + "/eval.json", config.dump());
  const auto r = testing::run_command(testing::bin_dir() + "/kvlab-eval --config " + dir + "/eval.json --out " + dir +
                                      "/report.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = json::parse(testing::read_file(dir + "/report.json"));
  EXPECT_EQ(report["model"]["hf_overrides"], kYarn);
  EXPECT_EQ(report["model"]["rope_scaling"], "yarn");

  testing::SweepDir d;
  json base = testing::tiny_passkey_base();
  d.write({{"base", base},
           {"models", {qwen3()}},
           {"tasks", {{{"task", "passkey"}, {"grid", {{"hf_overrides", {kYarn, {{"rope_theta", 10000.0}}}}}}}}},
           {"caches", {"full"}}});
  const json listing = d.listing();
  ASSERT_EQ(listing.size(), 2u);
  EXPECT_NE(listing[0]["id"], listing[1]["id"]);
  const auto s = d.sweep();
  ASSERT_EQ(s.exit_code, 0) << s.err;
  std::set<json> seen;
  for (const json& line : d.lines()) seen.insert(line["report"]["model"]["hf_overrides"]);
  EXPECT_EQ(seen, (std::set<json>{kYarn, {{"rope_theta", 10000.0}}}));
}

}  // namespace
}  // namespace kvlab
