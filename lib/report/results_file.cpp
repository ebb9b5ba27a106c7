#include "report/results_file.h"

#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/sha256.h"
#include "run/report.h"
#include "sweep/results_dir.h"
#include "sweep/results_log.h"

namespace kvlab {

namespace {

// A key's value, or null when absent (operator[] on a const json must not meet a missing key).
const nlohmann::json& at(const nlohmann::json& j, const char* key) {
  static const nlohmann::json null;
  return j.is_object() && j.contains(key) ? j[key] : null;
}

void check_record(const nlohmann::json& r, const std::string& where) {
  for (const char* key : {"id", "config", "report"})
    if (!r.contains(key))
      fail(where + ": a results line needs \"id\", \"config\" and \"report\"; this one lacks \"" + key + "\"");
  if (!r["id"].is_string()) fail(where + ": \"id\" must be a string");
  const std::string run = "run " + r["id"].get<std::string>();
  const nlohmann::json& rep = r["report"];
  if (at(rep, "schema") != "kvlab.report") fail(where + ": " + run + ": \"report\" is not a kvlab.report");
  if (at(rep, "schema_version") != kReportSchemaVersion)
    fail(where + ": " + run + " has a kvlab.report of schema_version " + at(rep, "schema_version").dump() +
         ", but this kvlab-report reads schema_version " + std::to_string(kReportSchemaVersion) +
         "; use the kvlab-report of the build that wrote it");
  if (at(rep, "complete") != true) fail(where + ": " + run + ": the report is not complete");
  for (const char* key : {"task", "config", "memory", "metrics"})
    if (!rep.contains(key)) fail(where + ": " + run + ": the report lacks \"" + key + "\"");
  if (!rep["task"].is_string() || !rep["config"].is_object() || !rep["metrics"].is_object())
    fail(where + ": " + run + ": the report's task, config or metrics has the wrong type");
}

}  // namespace

LoadedResults load_results(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  LoadedResults out;
  std::set<std::string> seen;
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    if (fs::is_directory(p)) {
      std::vector<std::string> in_dir = results_files(p);
      if (in_dir.empty()) fail(p + ": no results.jsonl (or results.shard-*.jsonl) in this directory");
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::exists(p)) {
      files.push_back(p);
    } else {
      fail(p + ": no such results file or directory");
    }
  }
  for (const std::string& file : files) {
    JsonlContent c = read_jsonl(file);
    ResultsSource s;
    s.path = file;
    s.sha256 = sha256_file(file);
    s.lines = c.records.size();
    s.torn_bytes = c.torn_bytes;
    for (size_t i = 0; i < c.records.size(); i++) {
      const std::string where = file + ":" + std::to_string(c.line_numbers[i]);
      check_record(c.records[i], where);
      std::string id = c.records[i]["id"].get<std::string>();
      if (!seen.insert(id).second) {
        s.duplicates++;
        continue;
      }
      out.runs.push_back({id, std::move(c.records[i]["config"]), std::move(c.records[i]["report"]), where});
    }
    out.sources.push_back(s);
  }
  if (out.runs.empty()) fail("no runs in " + (files.empty() ? std::string("the inputs") : files.front()));
  return out;
}

}  // namespace kvlab
