#pragma once
// One run of a sweep as a child process: kvlab-eval --config runs/<id>.config.json --out
// runs/<id>.json, its stderr in runs/<id>.log. On success the report is complete on disk before
// the run's line is appended to the results file; a failure appends a record to the failures
// file instead. The child dies with its parent (PR_SET_PDEATHSIG), so a sweep killed with
// SIGKILL leaves no run behind that could finish later.
#include <string>

#include "sweep/results_dir.h"
#include "sweep/sweep_file.h"

namespace kvlab {

struct ExecSettings {
  std::string eval_binary;  // kvlab-eval
  ResultsLayout layout;
};

struct RunOutcome {
  enum Status { Ok, Failed, Interrupted };
  Status status = Failed;
  int exit_code = 0;  // the child's exit status, or 128 + signal
  int signal = 0;     // the signal that ended it, 0 if it exited
  double seconds = 0;
  std::string message;  // failures: the last line kvlab-eval wrote to stderr
};

// `cuda_visible_devices`: set in the child's environment unless empty. After SIGINT/SIGTERM
// (core/interrupt.h) the child is asked to stop with SIGTERM and the run is Interrupted, not
// failed: its partial report is not complete, so the next sweep redoes it.
RunOutcome execute_run(const Sweep& sweep, const SweepRun& run, const ExecSettings& settings,
                       const std::string& cuda_visible_devices);

}  // namespace kvlab
