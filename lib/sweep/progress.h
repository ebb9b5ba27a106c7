#pragma once
// What a sweep shows on stderr while it runs. On a terminal: one line redrawn in place (a bar,
// runs finished of those to run, elapsed time, ETA, the run started last); failures print above
// it. Otherwise (a log file, a Slurm output): one plain line per finished run.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "sweep/executor.h"

namespace kvlab {

// "0:42", "12:03", "1:02:03".
std::string format_duration(double seconds);

class Progress {
 public:
  Progress(size_t to_run, size_t workers, bool terminal, std::FILE* out = stderr);
  void started(const std::string& id, const std::string& label);
  void finished(const std::string& id, const std::string& label, const RunOutcome& outcome);
  void tick();    // redraws the terminal line (the clock moved)
  void finish();  // clears the terminal line
  // Seconds still to go, from the mean time of the runs finished so far; negative until one has.
  double eta_seconds() const;

 private:
  void draw();
  void clear();

  size_t to_run_, workers_, done_ = 0;
  bool terminal_;
  std::FILE* out_;
  double seconds_sum_ = 0;
  std::string current_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kvlab
