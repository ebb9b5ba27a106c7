// Sweep files: expansion (grid, zip, shared keys), stable ids, sharding, and every kind of bad
// input refused with its key named, before anything runs.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/error.h"
#include "core/sha256.h"
#include "sweep/run_id.h"
#include "sweep/shard.h"
#include "sweep/sweep_file.h"
#include "sweep_fixture.h"

namespace kvlab {
namespace {

using nlohmann::json;
using testing::tiny_model;

SweepDefaults defaults() { return {tiny_model(), testing::source_dir()}; }

Sweep parse(const json& j) { return parse_sweep(j, testing::temp_dir() + "/configs/sweep.json", defaults()); }

std::string text(const json* v) { return v ? (v->is_string() ? v->get<std::string>() : v->dump()) : "absent"; }

TEST(SweepFile, GridIsCartesianAndZipAdvancesTogether) {
  Sweep s = parse({{"base", testing::tiny_passkey_base()},
                   {"models", {tiny_model()}},
                   {"tasks", {"passkey"}},
                   {"caches",
                    {{{"cache", "lacache"},
                      {"grid", {{"interval", {1, 4}}}},
                      {"zip", {{"budget", {32, 64, 96}}, {"cache_params.span", {1, 2, 1}}}}}}}});
  ASSERT_EQ(s.runs.size(), 6u);
  std::set<std::string> seen;
  for (const SweepRun& r : s.runs)
    seen.insert(text(find_dotted(r.config, "interval")) + "/" + text(find_dotted(r.config, "budget")) + "/" +
                text(find_dotted(r.config, "cache_params.span")));
  EXPECT_EQ(seen, (std::set<std::string>{"1/32/1", "1/64/2", "1/96/1", "4/32/1", "4/64/2", "4/96/1"}));
  for (const SweepRun& r : s.runs) {
    EXPECT_EQ(r.config["cache"], "lacache");
    EXPECT_EQ(r.config["task"], "passkey");
    EXPECT_EQ(r.config["context"], 160);
    EXPECT_TRUE(r.config["budget"].is_string()) << "budgets are kept as kvlab-eval reads them";
  }
  EXPECT_EQ(s.varying, (std::vector<std::string>{"budget", "cache_params.span", "interval"}));
}

TEST(SweepFile, TopLevelAxesCrossEveryEntryAndZipGroupsCrossEachOther) {
  Sweep s = parse({{"base", testing::tiny_passkey_base()},
                   {"caches", {"streaming", "h2o"}},
                   {"grid", {{"budget", {16, 32}}}},
                   {"zip", {{{"interval", {1, 2}}, {"seed", {0, 1}}}, {{"context", {160, 200, 240}}}}}});
  // 2 caches x 2 budgets x 2 (interval, seed) pairs x 3 contexts.
  ASSERT_EQ(s.runs.size(), 24u);
  for (const SweepRun& r : s.runs) EXPECT_EQ(r.config["interval"].get<int>() - 1, r.config["seed"].get<int>());
}

TEST(SweepFile, IdIsTheHashOfTheCanonicalConfigWhateverTheKeyOrder) {
  const std::string a = R"({"base": {"backend": "cpu", "context": 160, "depths": [0.5], "samples": 1},
                            "caches": [{"cache": "streaming", "budget": 32, "cache_params": {"sinks": 2}}]})";
  const std::string b = R"({"caches": [{"cache_params": {"sinks": 2}, "budget": "32", "cache": "streaming"}],
                            "base": {"samples": 1, "depths": [0.5], "context": 160, "backend": "cpu", "seed": 0}})";
  Sweep sa = parse(json::parse(a)), sb = parse(json::parse(b));
  ASSERT_EQ(sa.runs.size(), 1u);
  ASSERT_EQ(sb.runs.size(), 1u);
  // Key order, a budget written as a number or a string, and a default spelled out change nothing.
  EXPECT_EQ(sa.runs[0].id, sb.runs[0].id);
  EXPECT_EQ(sa.runs[0].id, sha256_hex(sa.runs[0].config.dump()).substr(0, 12));
  EXPECT_TRUE(is_run_id(sa.runs[0].id));
  json changed = json::parse(a);
  changed["caches"][0]["budget"] = 33;
  EXPECT_NE(parse(changed).runs[0].id, sa.runs[0].id);
  // The same sweep parsed again names its runs the same way.
  EXPECT_EQ(parse(json::parse(a)).runs[0].id, sa.runs[0].id);
}

TEST(SweepFile, SharedKeysApplyOnlyWhereTheyFit) {
  Sweep s = parse({{"base", {{"samples", 1}, {"lengths", {256}}, {"haystack", "repeat"}, {"context", 160}}},
                   {"tasks", {"passkey", "niah"}},
                   {"caches", {"full", "lacache"}},
                   {"grid", {{"budget", {32}}, {"cache_params.span", {1}}}}});
  ASSERT_EQ(s.runs.size(), 4u);
  for (const SweepRun& r : s.runs) {
    const bool niah = r.config["task"] == "niah", full = r.config["cache"] == "full";
    EXPECT_EQ(r.config.contains("lengths"), niah);
    EXPECT_EQ(r.config.contains("context"), !niah);
    EXPECT_EQ(r.config.contains("budget"), !full) << "full keeps everything: the budget does not apply";
    EXPECT_EQ(r.config.contains("cache_params"), !full);
    EXPECT_EQ(r.config["samples"], 1);
    // Defaults are filled in, paths relative to the base directory when under it.
    EXPECT_TRUE(r.config.contains("seed"));
    EXPECT_EQ(r.config["model"], tiny_model()) << "the model lives outside this sweep's base directory";
  }
}

TEST(SweepFile, RunsThatResolveToTheSameConfigAreOneRun) {
  Sweep s = parse({{"base", testing::tiny_passkey_base()},
                   {"caches", {{{"cache", "streaming"}, {"grid", {{"budget", {32, "32", 64}}}}}}}});
  EXPECT_EQ(s.runs.size(), 2u);
}

TEST(SweepFile, ShardsSplitTheRunsByIdDeterministically) {
  Sweep s = parse({{"base", testing::tiny_passkey_base()},
                   {"caches", {{{"cache", "streaming"}, {"grid", {{"budget", {16, 24, 32, 40, 48, 56, 64}}}}}}},
                   {"grid", {{"interval", {1, 2}}}}});
  ASSERT_EQ(s.runs.size(), 14u);
  std::vector<std::string> sorted;
  for (const SweepRun& r : s.runs) sorted.push_back(r.id);
  std::sort(sorted.begin(), sorted.end());
  std::map<std::string, int> owner;
  for (int i = 0; i < 3; i++) {
    size_t last_index = 0;
    for (const SweepRun* r : select_shard(s.runs, {i, 3})) {
      EXPECT_TRUE(owner.emplace(r->id, i).second) << r->id << " is in two shards";
      const size_t pos = size_t(std::find(sorted.begin(), sorted.end(), r->id) - sorted.begin());
      EXPECT_EQ(int(pos % 3), i);
      EXPECT_GE(r->index, last_index) << "a shard keeps the sweep file's order";
      last_index = r->index;
    }
  }
  EXPECT_EQ(owner.size(), s.runs.size());
  EXPECT_EQ(parse_shard("2/3").index, 2);
  for (const char* bad : {"3/3", "a/2", "1", "-1/2", "0/0", "1/2/3"}) EXPECT_THROW(parse_shard(bad), Error) << bad;
}

TEST(SweepFile, EvalConfigHasAbsolutePaths) {
  Sweep s = parse({{"base", {{"haystack", "text"}, {"lengths", {256}}, {"data", "data/hay.txt"}}},
                   {"models", {tiny_model()}},
                   {"tasks", {"niah"}}});
  ASSERT_EQ(s.runs.size(), 1u);
  EXPECT_EQ(s.runs[0].config["data"], "data/hay.txt") << "paths under the base directory stay relative";
  json e = eval_config_for(s, s.runs[0]);
  EXPECT_EQ(e["data"], s.base_dir + "/data/hay.txt");
  EXPECT_EQ(e["model"], tiny_model());
}

struct BadCase {
  const char* name;
  json sweep;
  const char* message;
};

TEST(SweepFile, BadInputIsRefusedNamingTheKey) {
  const json base = testing::tiny_passkey_base();
  const std::vector<BadCase> cases = {
      {"unknown top-level key", {{"grids", {{"budget", {1}}}}}, "unknown key \"grids\""},
      {"unknown setting", {{"base", {{"contex", 100}}}}, "unknown key \"contex\""},
      {"option of no task", {{"base", {{"lengths", {256}}}}, {"tasks", {"passkey"}}}, "unknown key \"lengths\""},
      {"unknown policy", {{"caches", {"lacash"}}}, "unknown cache policy \"lacash\""},
      {"unknown task", {{"tasks", {"passkeys"}}}, "unknown task \"passkeys\""},
      {"unknown cache parameter",
       {{"caches", {{{"cache", "lacache"}, {"cache_params", {{"spam", 2}}}}}}},
       "cache parameter \"spam\""},
      {"parameter out of range",
       {{"base", base}, {"caches", {{{"cache", "streaming"}, {"budget", 32}, {"cache_params", {{"sinks", -1}}}}}}},
       "\"sinks\" = -1 is outside"},
      {"parameter below its minimum",
       {{"base", base}, {"caches", {{{"cache", "pyramidkv"}, {"budget", 32}, {"cache_params", {{"beta", 0.5}}}}}}},
       "\"beta\" = 0.5 is outside"},
      {"depth beyond 1", {{"base", {{"depths", {0.5, 1.5}}}}}, "is outside [0, 1]"},
      {"wrong type", {{"base", {{"samples", "two"}}}}, "must be an integer"},
      {"zipped axes of different lengths",
       {{"zip", {{"budget", {16, 32}}, {"interval", {1, 2, 4}}}}},
       "zipped axes must have the same length"},
      {"empty grid axis", {{"grid", {{"budget", json::array()}}}}, "empty list: the sweep would have no runs"},
      {"empty zip axis", {{"zip", {{"budget", json::array()}}}}, "empty list: the sweep would have no runs"},
      {"empty task list", {{"tasks", json::array()}}, "empty list: the sweep would have no runs"},
      {"out is the sweep's", {{"base", {{"out", "x.json"}}}}, "\"out\" is set by kvlab-sweep"},
      {"key set twice",
       {{"tasks", {{{"task", "passkey"}, {"context", 160}}}}, {"grid", {{"context", {200}}}}},
       "\"context\" is also set by tasks[0]"},
      {"unknown backend", {{"base", {{"backend", "tpu"}}}}, "backend \"tpu\" is not cpu or cuda"},
      {"interval below 1", {{"base", {{"interval", 0}}}}, "\"interval\" must be an integer in [1, 1048576]"},
      {"entry without its name", {{"caches", {{{"budget", 32}}}}}, "caches[0]: names no \"cache\""},
      {"not an object", json::array(), "a sweep file is a JSON object"},
  };
  for (const BadCase& c : cases) {
    try {
      parse(c.sweep);
      ADD_FAILURE() << c.name << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitBadInput) << c.name;
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("sweep.json"), std::string::npos) << c.name << ": names the file";
    }
  }
}

}  // namespace
}  // namespace kvlab
