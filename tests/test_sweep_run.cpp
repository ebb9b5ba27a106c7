// kvlab-sweep end to end on the embedded model: every run once, reports and lines that agree,
// failures recorded while the sweep goes on, dry runs with planned memory, refusals before any
// run, several GPU workers on one results file, shards and their merge.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "model/config.h"
#include "model/memory_plan.h"
#include "model/transformer.h"
#include "sweep/progress.h"
#include "sweep/results_log.h"
#include "sweep_fixture.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::SweepDir;
using testing::tiny_model;

json three_caches() {
  return {{"base", testing::tiny_passkey_base()},
          {"models", {tiny_model()}},
          {"tasks", {"passkey"}},
          {"caches",
           {"full",
            {{"cache", "streaming"}, {"budget", 32}},
            {{"cache", "lacache"}, {"budget", 32}, {"cache_params", {{"span", 1}}}}}}};
}

json read_json(const std::string& path) { return json::parse(testing::read_file(path)); }

TEST(SweepRun, EveryRunOnceWithItsReportAndNothingTwiceOnResume) {
  SweepDir d;
  d.write(three_caches());
  const json listing = d.listing();
  ASSERT_EQ(listing.size(), 3u);
  auto r = d.sweep();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> lines = d.lines();
  ASSERT_EQ(lines.size(), 3u);
  std::map<std::string, json> by_id;
  for (const json& l : lines) by_id[l["id"].get<std::string>()] = l;
  for (const json& run : listing) {
    const std::string id = run["id"];
    ASSERT_TRUE(by_id.count(id)) << id;
    const json& line = by_id[id];
    EXPECT_EQ(line["config"], run["config"]);
    // The line carries exactly the report kvlab-eval wrote for the run, and the run's config.
    EXPECT_EQ(line["report"], read_json(d.results() + "/runs/" + id + ".json"));
    EXPECT_EQ(line["report"]["schema"], "kvlab.report");
    EXPECT_EQ(line["report"]["config"]["cache"]["policy"], run["config"]["cache"]);
    EXPECT_EQ(read_json(d.results() + "/runs/" + id + ".config.json")["cache"], run["config"]["cache"]);
    EXPECT_TRUE(fs::exists(d.results() + "/runs/" + id + ".log"));
  }
  EXPECT_NE(r.err.find("[1/3] ok"), std::string::npos) << "a plain line per run without a terminal: " << r.err;
  EXPECT_NE(r.err.find("ETA"), std::string::npos);

  auto again = d.sweep();
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("3 done before"), std::string::npos) << again.err;
  EXPECT_EQ(testing::ids_of(d.lines()), testing::ids_of(lines));
}

// A copy of the tiny model whose weights are cut short: its config plans fine, its load fails.
std::string broken_model(const std::string& dir) {
  const std::string m = dir + "/broken-llama";
  fs::create_directories(m);
  for (const fs::directory_entry& e : fs::directory_iterator(tiny_model()))
    fs::copy(e.path(), m + "/" + e.path().filename().string());
  fs::resize_file(m + "/model-00002-of-00002.safetensors", 1000);
  return m;
}

TEST(SweepRun, AFailedRunIsRecordedAndTheSweepGoesOn) {
  SweepDir d;
  const std::string broken = broken_model(d.dir);
  json s = three_caches();
  s["models"] = {broken, tiny_model()};
  s["caches"] = {"full"};
  d.write(s);
  auto r = d.sweep();
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("1 runs failed"), std::string::npos) << r.err;
  EXPECT_EQ(d.lines().size(), 1u) << "the good run after the failed one still ran";
  std::vector<json> failures = d.lines("failures.jsonl");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0]["exit_code"], 2);
  EXPECT_EQ(failures[0]["config"]["model"], "broken-llama") << "relative to the sweep's base directory";
  EXPECT_NE(failures[0]["message"].get<std::string>().find("safetensors"), std::string::npos) << failures[0].dump();
  EXPECT_TRUE(fs::exists(d.results() + "/" + failures[0]["log"].get<std::string>()));

  // Without --retry-failed the failed run is not tried again, and still counts.
  auto skip = d.sweep();
  EXPECT_EQ(skip.exit_code, 4) << skip.err;
  EXPECT_EQ(d.lines("failures.jsonl").size(), 1u);
  EXPECT_NE(skip.err.find("1 failed before"), std::string::npos) << skip.err;

  // Mend the model: --retry-failed runs it, and the sweep is complete.
  fs::copy(tiny_model() + "/model-00002-of-00002.safetensors", broken + "/model-00002-of-00002.safetensors",
           fs::copy_options::overwrite_existing);
  auto retry = d.sweep("--retry-failed");
  EXPECT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_EQ(d.lines().size(), 2u);
}

TEST(SweepRun, DryRunListsPlannedMemoryAndRefusesRunsThatWillNotFit) {
  SweepDir d;
  d.write(three_caches());
  auto text = d.sweep("--dry-run");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* column : {"id", "model", "task", "cache", "budget", "parameters", "context", "KV cache", "total"})
    EXPECT_NE(text.out.find(column), std::string::npos) << column;
  EXPECT_NE(text.out.find("lacache"), std::string::npos);
  EXPECT_NE(text.out.find("span=1"), std::string::npos);

  // The plan is plan_memory's with the CPU backend's f32 elements, for the task's context.
  const json listing = d.listing();
  const MemoryPlan want =
      plan_memory(load_model_config(tiny_model()), 160, kDefaultPrefillChunk, {DType::F32, DType::F32, DType::F32});
  for (const json& run : listing) {
    EXPECT_EQ(run["memory"]["total_bytes"], want.total());
    EXPECT_EQ(run["memory"]["kv_bytes"], want.kv_bytes);
    EXPECT_EQ(run["fits"], true);
    EXPECT_EQ(run["status"], "to run");
  }
  EXPECT_FALSE(fs::exists(d.results())) << "a dry run writes nothing";

  for (const char* flags : {"--dry-run --memory-limit 1MiB", "--memory-limit 1MiB"}) {
    auto refused = d.sweep(flags);
    EXPECT_EQ(refused.exit_code, 3) << flags << ": " << refused.err;
    EXPECT_NE(refused.err.find("3 runs will not fit"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(format_bytes(want.total())), std::string::npos) << refused.err;
    EXPECT_FALSE(fs::exists(d.results() + "/runs")) << flags << ": nothing may run";
  }
}

TEST(SweepRun, ImpossibleSettingsExitWithCode2BeforeAnyRun) {
  struct Case {
    json caches;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {{{{"cache", "streaming"}, {"budget", -5}}}, "--budget \"-5\""},
           {{{{"cache", "streaming"}, {"budget", "12parsecs"}}}, "unknown unit"},
           {{{{"cache", "streaming"}}}, "needs a budget"},
           {{{{"cache", "lacache"}, {"budget", 32}, {"cache_params", {{"span", 3}}}}}, "use a smaller span"},
       }) {
    SweepDir d;
    json s = three_caches();
    s["caches"] = json::array({"full"});
    for (const json& e : c.caches) s["caches"].push_back(e);
    d.write(s);
    for (const char* flags : {"--dry-run", ""}) {
      auto r = d.sweep(flags);
      EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
      EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("sweep.json: run "), std::string::npos) << "names the run: " << r.err;
      EXPECT_FALSE(fs::exists(d.results() + "/runs")) << "not even the good run may start";
    }
  }
  SweepDir d;
  d.write({{"base", {{"contex", 160}}}});
  auto r = d.sweep();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown key \"contex\""), std::string::npos) << r.err;
  EXPECT_EQ(testing::run_command(testing::bin_dir() + "/kvlab-sweep " + d.file() + " --shard 2/2").exit_code, 2);
  EXPECT_EQ(testing::run_command(testing::bin_dir() + "/kvlab-sweep --no-such-flag").exit_code, 2);
}

TEST(SweepRun, GpuWorkersShareTheRunsAndOneResultsFile) {
  SweepDir d;
  json s = three_caches();
  s["grid"] = {{"interval", {1, 2}}};
  d.write(s);
  const std::string wrapper =
      testing::eval_wrapper(d.dir, "echo \"worker sees CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\" >&2");
  auto r = d.sweep("--gpus 0,1 --eval " + wrapper);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("on 2 worker(s)"), std::string::npos) << r.err;
  const json listing = d.listing();
  std::vector<std::string> ids = testing::ids_of(d.lines());
  EXPECT_EQ(ids.size(), 6u);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), testing::id_set(listing));
  std::map<std::string, int> per_gpu;
  for (const std::string& id : ids) {
    const std::string log = testing::read_file(d.results() + "/runs/" + id + ".log");
    const bool gpu0 = log.find("CUDA_VISIBLE_DEVICES=0\n") != std::string::npos;
    const bool gpu1 = log.find("CUDA_VISIBLE_DEVICES=1\n") != std::string::npos;
    EXPECT_NE(gpu0, gpu1) << "each run sees exactly one GPU: " << log;
    per_gpu[gpu0 ? "0" : "1"]++;
  }
  EXPECT_GT(per_gpu["0"], 0);
  EXPECT_GT(per_gpu["1"], 0);
}

TEST(SweepRun, ShardsRunApartAndMergeIntoOneResultsFile) {
  SweepDir d;
  json s = three_caches();
  s["grid"] = {{"interval", {1, 2}}};
  d.write(s);
  const std::set<std::string> all = testing::id_set(d.listing());
  std::set<std::string> seen;
  for (int i = 0; i < 3; i++) {
    auto r = d.sweep("--shard " + std::to_string(i) + "/3");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const std::string& id : testing::ids_of(d.lines("results.shard-" + std::to_string(i) + "-of-3.jsonl")))
      EXPECT_TRUE(seen.insert(id).second) << id << " ran in two shards";
  }
  EXPECT_EQ(seen, all);
  EXPECT_FALSE(fs::exists(d.results() + "/results.jsonl"));
  auto merge = testing::run_command(testing::bin_dir() + "/kvlab-sweep --merge " + d.results());
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  EXPECT_NE(merge.out.find("6 lines added"), std::string::npos) << merge.out;
  std::vector<std::string> merged = testing::ids_of(d.lines());
  EXPECT_EQ(std::set<std::string>(merged.begin(), merged.end()), all);
  EXPECT_EQ(merged.size(), all.size());
  auto twice = testing::run_command(testing::bin_dir() + "/kvlab-sweep --merge " + d.results());
  EXPECT_NE(twice.out.find("0 lines added, 6 already there"), std::string::npos) << twice.out;
  EXPECT_EQ(d.lines().size(), all.size());
  // The whole sweep, unsharded, now finds everything done.
  auto whole = d.sweep();
  EXPECT_EQ(whole.exit_code, 0) << whole.err;
  EXPECT_NE(whole.err.find("6 done before"), std::string::npos) << whole.err;
}

std::string progress_text(bool terminal) {
  std::FILE* f = std::tmpfile();
  Progress p(3, 1, terminal, f);
  RunOutcome ok{RunOutcome::Ok, 0, 0, 2.0, ""};
  RunOutcome failed{RunOutcome::Failed, 2, 0, 1.0, "kvlab-eval: error: bad weights"};
  p.started("aaaaaaaaaaaa", "passkey full");
  p.finished("aaaaaaaaaaaa", "passkey full", ok);
  p.started("bbbbbbbbbbbb", "passkey h2o budget=32");
  p.finished("bbbbbbbbbbbb", "passkey h2o budget=32", failed);
  p.started("cccccccccccc", "passkey lacache budget=32");
  p.finish();
  std::string text(size_t(std::ftell(f)), '\0');
  std::rewind(f);
  text.resize(std::fread(text.data(), 1, text.size(), f));
  std::fclose(f);
  return text;
}

TEST(SweepProgress, ABarOnATerminalAndAPlainLinePerRunOtherwise) {
  const std::string bar = progress_text(true);
  EXPECT_NE(bar.find("\r\033[K[########........"), std::string::npos) << "one run of three done: " << bar;
  EXPECT_NE(bar.find("1/3  elapsed 0:00  ETA 0:04  now: bbbbbbbbbbbb passkey h2o budget=32"), std::string::npos) << bar;
  EXPECT_NE(bar.find("kvlab-sweep: [2/3] FAILED  bbbbbbbbbbbb  passkey h2o budget=32 (exit 2): kvlab-eval: error: bad "
                     "weights\n"),
            std::string::npos)
      << "failures print above the bar: " << bar;
  EXPECT_EQ(bar.find("[1/3] ok"), std::string::npos) << "successes only move the bar";

  const std::string plain = progress_text(false);
  EXPECT_EQ(plain.find('\r'), std::string::npos);
  EXPECT_EQ(plain.find('\033'), std::string::npos);
  EXPECT_EQ(
      plain,
      "kvlab-sweep: [1/3] ok      aaaaaaaaaaaa  passkey full  2.0 s  ETA 0:04\n"
      "kvlab-sweep: [2/3] FAILED  bbbbbbbbbbbb  passkey h2o budget=32 (exit 2): kvlab-eval: error: bad weights\n");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(3723), "1:02:03");
}

}  // namespace
}  // namespace kvlab
