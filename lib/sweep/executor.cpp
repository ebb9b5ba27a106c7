#include "sweep/executor.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/environment.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "sweep/results_log.h"

namespace kvlab {

namespace {

namespace fs = std::filesystem;

// The last non-empty line of a log, at most 400 bytes of it.
std::string last_line(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return "";
  const std::streamoff size = f.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 16384);
  f.seekg(from);
  std::string tail(size_t(size - from), '\0');
  f.read(tail.data(), std::streamsize(tail.size()));
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' ')) tail.pop_back();
  const size_t nl = tail.rfind('\n');
  std::string line = nl == std::string::npos ? tail : tail.substr(nl + 1);
  if (line.size() > 400) line = line.substr(0, 397) + "...";
  return line;
}

// Waits for `pid`, asking it once to stop (SIGTERM) when this process is interrupted. Polls
// because the interrupt handlers restart system calls, so a blocking waitpid would not notice.
int wait_for(pid_t pid) {
  bool asked_to_stop = false;
  useconds_t pause = 1000;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) fail(std::string("waitpid failed: ") + std::strerror(errno), kExitInternal);
    if (interrupted() && !asked_to_stop) {
      kill(pid, SIGTERM);
      asked_to_stop = true;
    }
    usleep(pause);
    pause = std::min<useconds_t>(pause * 2, 50000);
  }
}

}  // namespace

RunOutcome execute_run(const Sweep& sweep, const SweepRun& run, const ExecSettings& settings,
                       const std::string& cuda_visible_devices) {
  const ResultsLayout& layout = settings.layout;
  const std::string config_path = layout.config(run.id), report_path = layout.report(run.id);
  const std::string log_path = layout.log(run.id);
  write_file_atomically(config_path, eval_config_for(sweep, run).dump(2) + "\n");
  std::error_code ec;
  fs::remove(report_path, ec);  // an incomplete report of an interrupted attempt

  // Everything the child needs is built before fork: after it, the child only makes system calls.
  std::vector<std::string> args = {settings.eval_binary, "--config", config_path, "--out", report_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) fail(std::string("fork failed: ") + std::strerror(errno), kExitInternal);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(137);  // the parent died before prctl took effect
    signal(SIGPIPE, SIG_DFL);
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = open("/dev/null", O_RDWR);
    if (log < 0 || null < 0) _exit(126);
    dup2(null, 0);
    dup2(null, 1);
    dup2(log, 2);
    if (!cuda_visible_devices.empty()) setenv("CUDA_VISIBLE_DEVICES", cuda_visible_devices.c_str(), 1);
    execv(argv[0], argv.data());
    dprintf(2, "kvlab-sweep: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  const int status = wait_for(pid);

  RunOutcome out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + out.signal;
  if (out.exit_code == 0) {
    if (std::optional<nlohmann::json> report = read_complete_report(report_path)) {
      append_jsonl(layout.results_file, results_line(run.id, run.config, *report));
      out.status = RunOutcome::Ok;
      return out;
    }
    out.message = "kvlab-eval exited 0 but " + report_path + " is not a complete report";
  } else if (interrupted()) {
    out.status = RunOutcome::Interrupted;
    return out;
  } else {
    out.message = last_line(log_path);
    if (out.message.empty())
      out.message = out.signal ? "killed by signal " + std::to_string(out.signal) : "no output on stderr";
  }
  out.status = RunOutcome::Failed;
  nlohmann::json record = {{"id", run.id},
                           {"config", run.config},
                           {"exit_code", out.exit_code},
                           {"signal", out.signal},
                           {"message", out.message},
                           {"log", fs::path(log_path).lexically_relative(layout.dir).string()},
                           {"seconds", out.seconds},
                           {"time_utc", utc_timestamp()}};
  append_jsonl(layout.failures_file, record.dump());
  return out;
}

}  // namespace kvlab
