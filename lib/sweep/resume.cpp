#include "sweep/resume.h"

#include <filesystem>

#include "core/atomic_file.h"
#include "sweep/results_log.h"

namespace kvlab {

std::map<std::string, nlohmann::json> completed_lines(const std::string& dir) {
  std::map<std::string, nlohmann::json> lines;
  for (const std::string& file : results_files(dir)) {
    JsonlContent c = read_jsonl(file);
    for (nlohmann::json& r : c.records)
      if (r.contains("id") && r["id"].is_string()) {
        std::string id = r["id"].get<std::string>();
        lines.emplace(std::move(id), std::move(r));
      }
  }
  return lines;
}

ResumeScan scan_results(const ResultsLayout& layout, const std::vector<const SweepRun*>& runs, bool retry_failed,
                        bool repair) {
  ResumeScan scan;
  if (repair) {
    scan.torn_bytes += repair_jsonl_tail(layout.results_file);
    scan.torn_bytes += repair_jsonl_tail(layout.failures_file);
  }
  std::map<std::string, nlohmann::json> lines = completed_lines(layout.dir);
  for (const std::string& file : failure_files(layout.dir))
    for (nlohmann::json& r : read_jsonl(file).records)
      if (r.contains("id") && r["id"].is_string()) {
        const std::string id = r["id"].get<std::string>();
        scan.failures[id] = std::move(r);
      }

  for (const SweepRun* run : runs) {
    const std::string report_path = layout.report(run->id);
    auto line = lines.find(run->id);
    RunStatus status = RunStatus::ToRun;
    if (line != lines.end()) {
      status = RunStatus::Done;
      if (repair && !std::filesystem::exists(report_path) && line->second.contains("report")) {
        write_file_atomically(report_path, line->second["report"].dump(2) + "\n");
        scan.reports_restored++;
      }
    } else if (std::optional<nlohmann::json> report = read_complete_report(report_path)) {
      // Killed between the report's rename and the line's append: the run itself is done.
      status = RunStatus::Done;
      if (repair) {
        append_jsonl(layout.results_file, results_line(run->id, run->config, *report));
        scan.lines_added++;
      }
    } else if (scan.failures.count(run->id) && !retry_failed) {
      status = RunStatus::FailedEarlier;
    }
    scan.status.push_back(status);
  }
  std::map<std::string, nlohmann::json> failed_earlier;
  for (size_t i = 0; i < runs.size(); i++)
    if (scan.status[i] == RunStatus::FailedEarlier) failed_earlier[runs[i]->id] = scan.failures[runs[i]->id];
  scan.failures = std::move(failed_earlier);
  return scan;
}

}  // namespace kvlab
