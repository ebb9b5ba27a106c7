#pragma once
// Reading sweep results (results.jsonl lines {"id", "config", "report"}) for kvlab-report: from
// files or results directories (results.jsonl and every shard's file), every report checked to
// be a kvlab.report of the schema version this build reads before anything is written.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kvlab {

struct ResultRecord {
  std::string id;
  nlohmann::json config;  // the sweep's resolved config
  nlohmann::json report;  // the kvlab.report
  std::string source;     // file:line
};

struct ResultsSource {
  std::string path;
  std::string sha256;
  size_t lines = 0;       // complete lines read
  size_t duplicates = 0;  // ids already read from an earlier line or file
  size_t torn_bytes = 0;  // a torn last line (a sweep still writing, or killed), skipped
};

struct LoadedResults {
  std::vector<ResultRecord> runs;  // one per id, in the order first read
  std::vector<ResultsSource> sources;
};

// Error (exit code 2) naming the file and line for a missing file, a malformed line, or a report
// that is not a complete kvlab.report of schema_version kReportSchemaVersion.
LoadedResults load_results(const std::vector<std::string>& paths);

}  // namespace kvlab
