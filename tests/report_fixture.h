#pragma once
// A real sweep's results for the report tests (passkey, niah and perplexity under three cache
// strategies on the embedded model, run once per test binary), and the report's outputs on them.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/memory_plan.h"
#include "sweep_fixture.h"

namespace kvlab::testing {

struct ReportedSweep {
  SweepDir sweep;
  std::string out;                              // the report's directory
  std::vector<nlohmann::json> lines;            // results.jsonl
  std::map<std::string, nlohmann::json> by_id;  // id -> line
};

inline const ReportedSweep& reported_sweep() {
  static const ReportedSweep r = [] {
    ReportedSweep s;
    s.sweep.write({{"name", "report-test"},
                   {"base", {{"backend", "cpu"}, {"samples", 1}, {"seed", 0}}},
                   {"models", {tiny_model()}},
                   {"tasks",
                    {{{"task", "passkey"}, {"context", 160}, {"depths", {0.0, 1.0}}},
                     {{"task", "niah"}, {"haystack", "repeat"}, {"lengths", {256}}, {"depths", {0.0, 1.0}}},
                     {{"task", "perplexity"}, {"max_tokens", 96}, {"window", 32}}}},
                   {"caches",
                    {"full",
                     {{"cache", "streaming"}, {"budget", 32}},
                     {{"cache", "lacache"}, {"budget", 32}, {"cache_params", {{"span", 1}}}}}}});
    CommandResult run = s.sweep.sweep();
    if (run.exit_code != 0) throw std::runtime_error("the sweep failed: " + run.err);
    s.out = s.sweep.dir + "/report";
    CommandResult rep = run_command(bin_dir() + "/kvlab-report " + s.sweep.results() + " --out " + s.out +
                                    " --constraint 'kv_bytes<=40KiB' --title 'Report test'");
    if (rep.exit_code != 0) throw std::runtime_error("kvlab-report failed: " + rep.err);
    s.lines = s.sweep.lines();
    for (const nlohmann::json& l : s.lines) s.by_id[l["id"].get<std::string>()] = l;
    return s;
  }();
  return r;
}

// What the report must print for a run, computed here from its report, not by the report's code.
struct ExpectedText {
  std::string quality, kv_peak, decode;
};

inline ExpectedText expected_text(const nlohmann::json& report) {
  const nlohmann::json& m = report["metrics"];
  char quality[32], decode[32];
  if (report["task"] == "perplexity")
    std::snprintf(quality, sizeof quality, "%.2f", m["ppl"].get<double>());
  else
    std::snprintf(quality, sizeof quality, "%.3f", m["accuracy"].get<double>());
  std::snprintf(decode, sizeof decode, "%.1f", m["decode_tokens_per_s"].get<double>());
  return {quality, format_bytes(m["kv_cache"]["peak"]["kv_bytes"].get<size_t>()), decode};
}

}  // namespace kvlab::testing
