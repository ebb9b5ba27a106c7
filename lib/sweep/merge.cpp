#include "sweep/merge.h"

#include <filesystem>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "sweep/results_dir.h"
#include "sweep/results_log.h"

namespace kvlab {

MergeCounts merge_shards(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) fail(dir + ": not a results directory");
  const ResultsLayout merged = results_layout(dir);
  MergeCounts counts;
  std::set<std::string> have;
  for (const nlohmann::json& r : read_jsonl(merged.results_file).records)
    if (r.contains("id")) have.insert(r["id"].get<std::string>());
  for (const std::string& file : results_files(dir)) {
    if (file == merged.results_file) continue;
    counts.shard_files++;
    for (const nlohmann::json& r : read_jsonl(file).records) {
      if (!r.contains("id") || !r["id"].is_string() || !r.contains("config") || !r.contains("report"))
        fail(file + ": a line lacks \"id\", \"config\" or \"report\"");
      const std::string id = r["id"].get<std::string>();
      if (!have.insert(id).second) {
        counts.already++;
        continue;
      }
      const std::string report = merged.report(id);
      if (!std::filesystem::exists(report)) {
        write_file_atomically(report, r["report"].dump(2) + "\n");
        counts.reports_restored++;
      }
      append_jsonl(merged.results_file, results_line(id, r["config"], r["report"]));
      counts.added++;
    }
  }
  // The last failure of each run that no shard completed, unless failures.jsonl has it already.
  std::map<std::string, nlohmann::json> last_failure;
  std::set<std::string> recorded;
  for (const std::string& file : failure_files(dir))
    for (const nlohmann::json& r : read_jsonl(file).records) {
      if (!r.contains("id") || !r["id"].is_string()) continue;
      if (file == merged.failures_file)
        recorded.insert(r.dump());
      else
        last_failure[r["id"].get<std::string>()] = r;
    }
  for (auto& [id, record] : last_failure)
    if (!have.count(id) && !recorded.count(record.dump())) {
      append_jsonl(merged.failures_file, record.dump());
      counts.failures_added++;
    }
  return counts;
}

}  // namespace kvlab
