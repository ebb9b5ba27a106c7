#pragma once
// Which runs of a sweep are already done, which failed before, and which are to run, from what
// its results directory holds. A run is done when its report is complete on disk and its line is
// in a results file of the directory (any shard's). Repairs make the directory consistent again
// after a kill at any moment: a torn last line is cut, a complete report without its line gets
// the line, and a line whose report file went missing gets the file back from the line.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sweep/results_dir.h"
#include "sweep/sweep_file.h"

namespace kvlab {

enum class RunStatus { Done, FailedEarlier, ToRun };

struct ResumeScan {
  std::vector<RunStatus> status;                   // per run passed in
  std::map<std::string, nlohmann::json> failures;  // id -> its last failure record, for FailedEarlier runs
  int lines_added = 0;                             // complete reports that lacked their line
  int reports_restored = 0;                        // report files rewritten from their line
  size_t torn_bytes = 0;                           // cut from this sweep's own files
};

// `repair`: a sweep about to run, holding the shard's lock (a dry run only looks). A run that
// failed before is FailedEarlier unless `retry_failed`.
ResumeScan scan_results(const ResultsLayout& layout, const std::vector<const SweepRun*>& runs, bool retry_failed,
                        bool repair);
// Every id with a line in any results file of `dir`, with its line's record.
std::map<std::string, nlohmann::json> completed_lines(const std::string& dir);

}  // namespace kvlab
