// The apps end to end, as the README uses them.
#include <gtest/gtest.h>

#include <algorithm>
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
  // The commit the binary was built from, as git describes the source tree now (when it is a
  // checkout): a commit or an edit since cmake configured must not leave a stale one.
  auto git = run_command("git -C " + testing::source_dir() + " describe --always --dirty --abbrev=12");
  if (git.exit_code == 0) {
    git.out.erase(git.out.find_last_not_of("\n") + 1);
    EXPECT_EQ(j["environment"]["git_sha"], git.out);
  }
  EXPECT_GT(j["metrics"]["decode_tokens_per_s"].get<double>(), 0.0);
}

// kvlab-bench end to end on the CPU: a row per context, the settings that shaped them (the
// prefill chunk changes TTFT and memory, so a report must say which it used), JSON and Markdown.
TEST(Apps, BenchWritesARowPerContextWithItsSettings) {
  const std::string out = testing::temp_dir() + "/bench.json", md = testing::temp_dir() + "/bench.md";
  auto r = run_command(testing::bin_dir() + "/kvlab-bench --model " + tiny("llama") +
                       " --backend cpu --contexts 40,100 --decode-tokens 3 --warmup-tokens 1 --chunk 32 --prompt-reps 3 --json " + out +
                       " --markdown " + md);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(testing::read_file(out));
  EXPECT_EQ(j["schema"], "kvlab.bench");
  EXPECT_EQ(j["prefill_chunk"], 32);
  EXPECT_EQ(j["prompt_repetitions"], 3);
  EXPECT_EQ(j["cache"]["policy"], "full");
  ASSERT_EQ(j["rows"].size(), 2u);
  for (size_t i = 0; i < 2; i++) {
    const json& row = j["rows"][i];
    EXPECT_EQ(row["context"], i == 0 ? 40 : 100);
    // TTFT is the median of the three prompts, each timed.
    std::vector<double> ttft = row["ttft_all_s"].get<std::vector<double>>();
    ASSERT_EQ(ttft.size(), 3u);
    std::sort(ttft.begin(), ttft.end());
    EXPECT_GT(ttft[0], 0.0);
    EXPECT_DOUBLE_EQ(row["ttft_s"].get<double>(), ttft[1]);
    EXPECT_GT(row["decode_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(row["roofline_fraction"].get<double>(), 0.0);
    EXPECT_GE(row["peak_bytes"].get<double>(), row["kv_bytes"].get<double>());
  }
  EXPECT_NE(r.out.find("prefill chunk 32 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("TTFT at 100 tokens over 3 prompts: first "), std::string::npos) << r.out;
  const std::string table = testing::read_file(md);
  EXPECT_NE(table.find("| 100 |"), std::string::npos) << table;
  EXPECT_EQ(r.out.find(table), r.out.size() - table.size()) << "stdout ends with the table the file holds";
}

TEST(Apps, HelpExplainsEveryFlag) {
  for (const char* app : {"kvlab-eval", "kvlab-generate", "kvlab-inspect", "kvlab-tokenize"}) {
    auto r = run_command(testing::bin_dir() + "/" + app + " --help");
    EXPECT_EQ(r.exit_code, 0) << app;
    EXPECT_NE(r.out.find("--"), std::string::npos) << app;
  }
}

// The positions a --dump-cache snapshot says (layer, head) keeps.
std::vector<int> kept(const json& snapshot, int layer, int head) {
  return snapshot["layers"][size_t(layer)][size_t(head)].get<std::vector<int>>();
}

TEST(Apps, EvalDumpsTheFirstSequenceOfItsRunAndReportDrawsIt) {
  const std::string dir = testing::temp_dir();
  auto r = run_command(testing::bin_dir() + "/kvlab-eval --model " + tiny("llama") +
                       " --context 200 --depths 0,1 --samples 1 --cache lacache --budget 48 --interval 1"
                       " --dump-cache " + dir + "/dump.json --dump-every 2 --out " + dir + "/r.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json dump = json::parse(testing::read_file(dir + "/dump.json"));
  EXPECT_EQ(dump["schema"], "kvlab.cache_dump");
  const json& snaps = dump["snapshots"];
  ASSERT_GE(snaps.size(), 3u);  // prompt, at least one decode step, end: of one sequence only
  EXPECT_EQ(snaps.front()["when"], "prefill");
  EXPECT_EQ(snaps.back()["when"], "end");
  for (size_t i = 1; i + 1 < snaps.size(); i++) EXPECT_EQ(snaps[i]["when"].get<std::string>().rfind("step ", 0), 0u);
  const int prompt = snaps.front()["tokens_seen"].get<int>();
  EXPECT_LE(prompt, 200);
  EXPECT_GT(prompt, 48);
  for (const json& s : snaps) {
    ASSERT_EQ(s["layers"].size(), 3u);  // the tiny model's layers, each with its 2 KV heads
    for (int l = 0; l < 3; l++) {
      const std::vector<int> k = kept(s, l, 0);
      EXPECT_EQ(k, kept(s, l, 1)) << "LaCache keeps the same slots in every head of a layer";
      EXPECT_LE(int(k.size()), 48 + 1) << "the budget, plus the compensation of an odd ladder";
      EXPECT_TRUE(std::is_sorted(k.begin(), k.end()));
      EXPECT_EQ(k.front(), 0);                                  // a sink
      EXPECT_EQ(k.back(), s["tokens_seen"].get<int>() - 1);     // the newest token
    }
  }
  // The ladder: layers keep different subsets of the old tokens.
  EXPECT_NE(kept(snaps.back(), 0, 0), kept(snaps.back(), 1, 0));

  r = run_command(testing::bin_dir() + "/kvlab-report --cache-dump " + dir + "/dump.json --out " + dir + "/map");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string html = testing::read_file(dir + "/map/cache_map.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("prefill: " + std::to_string(prompt) + " tokens seen"), std::string::npos);
  EXPECT_EQ(html.find("http"), html.find("http://www.w3.org/2000/svg")) << "nothing fetched at view time";

  testing::write_file(dir + "/bad.json", R"({"schema": "kvlab.cache_dump", "schema_version": 1,
      "snapshots": [{"when": "end", "tokens_seen": 4, "layers": [[[0, 9]]]}]})");
  r = run_command(testing::bin_dir() + "/kvlab-report --cache-dump " + dir + "/bad.json --out " + dir + "/bad");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("snapshots[0].layers[0][0]: positions must be integers in [0, tokens_seen = 4)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad/cache_map.html"));
}

TEST(Apps, GenerateDumpsSnapshotsEveryNSteps) {
  const std::string dump = testing::temp_dir() + "/g.json";
  auto r = run_command(testing::bin_dir() + "/kvlab-generate --model " + tiny("llama") +
                       " --prompt-ids 1,2,3,4,5,6,7,8,9,10 --max-new-tokens 12 --ignore-eos --cache streaming"
                       " --budget 8 --cache-param sinks=2 --cache-param window=6 --interval 1 --dump-cache " +
                       dump + " --dump-every 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json snaps = json::parse(testing::read_file(dump))["snapshots"];
  std::vector<std::string> when;
  for (const json& s : snaps) when.push_back(s["when"]);
  EXPECT_EQ(when, (std::vector<std::string>{"prefill", "step 5", "step 10", "end"}));
  // StreamingLLM: the 2 sinks and the 6 newest of the 21 tokens fed (10 prompt + 11 generated).
  EXPECT_EQ(snaps.back()["tokens_seen"], 21);
  EXPECT_EQ(kept(snaps.back(), 0, 0), (std::vector<int>{0, 1, 15, 16, 17, 18, 19, 20}));
}

}  // namespace
}  // namespace kvlab
