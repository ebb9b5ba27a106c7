#pragma once
// Runs a sweep's pending runs: one worker process per GPU (or a single worker), each running one
// run at a time with execute_run. The coordinating process hands a run to each worker as it
// frees up and is the only one drawing progress; workers report back over a pipe. Workers die
// with the coordinator and runs with their worker (PR_SET_PDEATHSIG), so kill -9 of the sweep
// stops everything at once; results.jsonl stays consistent because every append is locked.
#include <string>
#include <vector>

#include "sweep/executor.h"
#include "sweep/progress.h"
#include "sweep/sweep_file.h"

namespace kvlab {

struct SchedulerSettings {
  ExecSettings exec;
  // One worker per entry, whose runs see CUDA_VISIBLE_DEVICES=<entry>; empty: one worker and
  // the environment as it is.
  std::vector<std::string> gpus;
};

struct SweepTotals {
  size_t ok = 0, failed = 0, interrupted = 0;
  bool stopped = false;  // SIGINT/SIGTERM arrived: runs not yet started were left for next time
};

SweepTotals run_sweep_runs(const Sweep& sweep, const std::vector<const SweepRun*>& to_run,
                           const SchedulerSettings& settings, Progress& progress);

}  // namespace kvlab
