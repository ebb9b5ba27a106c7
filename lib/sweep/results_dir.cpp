#include "sweep/results_dir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace kvlab {

namespace fs = std::filesystem;

ResultsLayout results_layout(const std::string& dir, const Shard& shard) {
  ResultsLayout l;
  l.dir = dir;
  l.runs_dir = dir + "/runs";
  const std::string suffix = shard.whole() ? "" : ".shard-" + shard.name();
  l.results_file = dir + "/results" + suffix + ".jsonl";
  l.failures_file = dir + "/failures" + suffix + ".jsonl";
  l.lock_file = dir + "/.lock" + suffix;
  return l;
}

namespace {
std::vector<std::string> files_named(const std::string& dir, const std::string& stem) {
  std::vector<std::string> shards;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(stem + ".shard-", 0) == 0 && name.size() > 6 && name.substr(name.size() - 6) == ".jsonl")
      shards.push_back(e.path().string());
  }
  std::sort(shards.begin(), shards.end());
  std::vector<std::string> out;
  if (fs::exists(dir + "/" + stem + ".jsonl")) out.push_back(dir + "/" + stem + ".jsonl");
  out.insert(out.end(), shards.begin(), shards.end());
  return out;
}
}  // namespace

std::vector<std::string> results_files(const std::string& dir) { return files_named(dir, "results"); }
std::vector<std::string> failure_files(const std::string& dir) { return files_named(dir, "failures"); }

std::optional<nlohmann::json> read_complete_report(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j["schema"] != "kvlab.report" || j["complete"] != true) return std::nullopt;
  return j;
}

std::string results_line(const std::string& id, const nlohmann::json& config, const nlohmann::json& report) {
  return "{\"id\":" + nlohmann::json(id).dump() + ",\"config\":" + config.dump() + ",\"report\":" + report.dump() + "}";
}

}  // namespace kvlab
