#pragma once
// Errors and exit codes, in one place. Every user-facing failure is a kvlab::Error whose
// message names the file/field/tensor/line at fault; apps map it to an exit code.
#include <stdexcept>
#include <string>

namespace kvlab {

enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,   // a bug in kvlab (assertion, unexpected exception)
  kExitBadInput = 2,   // the user's files, flags or data are wrong
  kExitNoMemory = 3,   // the plan does not fit in device or host memory
  kExitRunsFailed = 4, // kvlab-sweep finished but some runs failed (see failures.jsonl)
  kExitInterrupted = 130,
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ExitCode code = kExitBadInput)
      : std::runtime_error(std::move(message)), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

[[noreturn]] void fail(const std::string& message, ExitCode code = kExitBadInput);

// Internal invariant: a failure here is a kvlab bug, not bad input.
#define KVLAB_ASSERT(cond)                                                                 \
  do {                                                                                     \
    if (!(cond)) ::kvlab::fail(std::string("internal error: ") + #cond + " at " + __FILE__ + \
                               ":" + std::to_string(__LINE__), ::kvlab::kExitInternal);   \
  } while (0)

// Runs an app's body, prints one line "kvlab: <message>" on error and returns the exit code.
int run_main(const char* app_name, int (*body)(int, char**), int argc, char** argv);

}  // namespace kvlab
