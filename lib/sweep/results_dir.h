#pragma once
// What a sweep's results directory holds, and what each file promises:
//   results.jsonl                 one line {"id", "config", "report"} per complete run
//   failures.jsonl                one line per failed attempt {"id", "config", "exit_code", "message", ...}
//   results.shard-I-of-N.jsonl    the same, for one shard (merged by kvlab-sweep --merge)
//   failures.shard-I-of-N.jsonl
//   runs/<id>.json                the run's report, written atomically by kvlab-eval
//   runs/<id>.config.json         the config kvlab-eval ran
//   runs/<id>.log                 kvlab-eval's stderr
// A line is appended only after its report is complete on disk, so a line never lacks a report.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sweep/shard.h"

namespace kvlab {

struct ResultsLayout {
  std::string dir;
  std::string runs_dir;
  std::string results_file;  // where this sweep (or shard) appends its lines
  std::string failures_file;
  std::string lock_file;  // held by the sweep working on this shard
  std::string report(const std::string& id) const { return runs_dir + "/" + id + ".json"; }
  std::string config(const std::string& id) const { return runs_dir + "/" + id + ".config.json"; }
  std::string log(const std::string& id) const { return runs_dir + "/" + id + ".log"; }
};

ResultsLayout results_layout(const std::string& dir, const Shard& shard = {});
// The results (or failures) files present in `dir`: the merged one first, then the shards' by name.
std::vector<std::string> results_files(const std::string& dir);
std::vector<std::string> failure_files(const std::string& dir);

// The report at `path` when it is a complete kvlab.report (kvlab-eval finished the run).
std::optional<nlohmann::json> read_complete_report(const std::string& path);
// {"id": ..., "config": ..., "report": ...} on one line, id first.
std::string results_line(const std::string& id, const nlohmann::json& config, const nlohmann::json& report);

}  // namespace kvlab
