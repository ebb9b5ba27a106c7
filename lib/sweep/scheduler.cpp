#include "sweep/scheduler.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/interrupt.h"

namespace kvlab {

namespace {

constexpr int32_t kNoMoreRuns = -1;

void make_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) fail(std::string("pipe failed: ") + std::strerror(errno), kExitInternal);
}

bool read_exactly(int fd, void* data, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = read(fd, static_cast<char*>(data) + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += size_t(r);
  }
  return true;
}

// A worker's report of one run: one JSON line, shorter than PIPE_BUF so that the lines of
// several workers never interleave in the shared pipe.
std::string event_line(size_t worker, size_t run, const RunOutcome& o) {
  nlohmann::json e = {{"worker", worker},
                      {"run", run},
                      {"status", int(o.status)},
                      {"exit_code", o.exit_code},
                      {"signal", o.signal},
                      {"seconds", o.seconds},
                      {"message", o.message.substr(0, 1000)}};
  return e.dump() + "\n";
}

[[noreturn]] void worker_main(size_t worker, int jobs, int events, const Sweep& sweep,
                              const std::vector<const SweepRun*>& to_run, const SchedulerSettings& settings) {
  const std::string gpu = settings.gpus.empty() ? "" : settings.gpus[worker];
  int32_t index = 0;
  while (read_exactly(jobs, &index, sizeof index) && index != kNoMoreRuns) {
    RunOutcome o;
    try {
      o = execute_run(sweep, *to_run[size_t(index)], settings.exec, gpu);
    } catch (const std::exception& e) {
      o.status = RunOutcome::Failed;
      o.exit_code = kExitInternal;
      o.message = std::string("kvlab-sweep: ") + e.what();
    }
    const std::string line = event_line(worker, size_t(index), o);
    if (write(events, line.data(), line.size()) != ssize_t(line.size())) break;
    if (o.status == RunOutcome::Interrupted || interrupted()) break;
  }
  _exit(0);
}

struct Worker {
  pid_t pid = -1;
  int jobs = -1;   // write end: run indices
  long busy = -1;  // index of the run it holds, or -1
  bool alive = true;
};

class Coordinator {
 public:
  Coordinator(const Sweep& sweep, const std::vector<const SweepRun*>& to_run, const SchedulerSettings& settings,
              Progress& progress)
      : sweep_(sweep), to_run_(to_run), settings_(settings), progress_(progress) {}

  SweepTotals run();

 private:
  void start_workers(size_t n);
  void dispatch(Worker& w);
  void stop_dispatching(Worker& w);
  void drain_events();
  void on_event(const nlohmann::json& e);
  void reap_dead_workers();
  bool any_busy() const {
    for (const Worker& w : workers_)
      if (w.busy >= 0) return true;
    return false;
  }

  const Sweep& sweep_;
  const std::vector<const SweepRun*>& to_run_;
  const SchedulerSettings& settings_;
  Progress& progress_;
  std::vector<Worker> workers_;
  int events_ = -1;
  size_t next_ = 0;
  bool stopping_ = false;
  std::string pending_;  // a partial event line
  SweepTotals totals_;
};

void Coordinator::start_workers(size_t n) {
  int events[2];
  make_pipe(events);
  events_ = events[0];
  const pid_t self = getpid();
  for (size_t i = 0; i < n; i++) {
    int jobs[2];
    make_pipe(jobs);
    const pid_t pid = fork();
    if (pid < 0) fail(std::string("fork failed: ") + std::strerror(errno), kExitInternal);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != self) _exit(137);
      close(events[0]);
      close(jobs[1]);
      for (const Worker& w : workers_) close(w.jobs);  // or an earlier worker would never see EOF
      worker_main(i, jobs[0], events[1], sweep_, to_run_, settings_);
    }
    close(jobs[0]);
    Worker w;
    w.pid = pid;
    w.jobs = jobs[1];
    workers_.push_back(w);
  }
  close(events[1]);
}

void Coordinator::stop_dispatching(Worker& w) {
  if (w.jobs < 0) return;
  close(w.jobs);  // the worker reads end-of-file and exits
  w.jobs = -1;
}

void Coordinator::dispatch(Worker& w) {
  if (stopping_ || next_ >= to_run_.size() || !w.alive) {
    stop_dispatching(w);
    return;
  }
  const int32_t index = int32_t(next_++);
  if (write(w.jobs, &index, sizeof index) != ssize_t(sizeof index)) {
    w.alive = false;
    next_--;
    stop_dispatching(w);
    return;
  }
  w.busy = index;
  const SweepRun& r = *to_run_[size_t(index)];
  progress_.started(r.id, run_label(sweep_, r));
}

void Coordinator::on_event(const nlohmann::json& e) {
  Worker& w = workers_.at(e["worker"].get<size_t>());
  const size_t index = e["run"].get<size_t>();
  RunOutcome o;
  o.status = RunOutcome::Status(e["status"].get<int>());
  o.exit_code = e["exit_code"].get<int>();
  o.signal = e["signal"].get<int>();
  o.seconds = e["seconds"].get<double>();
  o.message = e["message"].get<std::string>();
  w.busy = -1;
  if (o.status == RunOutcome::Ok) totals_.ok++;
  if (o.status == RunOutcome::Failed) totals_.failed++;
  if (o.status == RunOutcome::Interrupted) totals_.interrupted++;
  const SweepRun& r = *to_run_[index];
  progress_.finished(r.id, run_label(sweep_, r), o);
  dispatch(w);
}

void Coordinator::drain_events() {
  char buf[8192];
  for (;;) {
    const ssize_t n = read(events_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending_.append(buf, size_t(n));
    if (size_t(n) < sizeof buf) break;
  }
  for (size_t nl; (nl = pending_.find('\n')) != std::string::npos;) {
    on_event(nlohmann::json::parse(pending_.substr(0, nl)));
    pending_.erase(0, nl + 1);
  }
}

void Coordinator::reap_dead_workers() {
  for (Worker& w : workers_) {
    if (w.pid < 0) continue;
    int status = 0;
    if (waitpid(w.pid, &status, WNOHANG) != w.pid) continue;
    w.pid = -1;
    w.alive = false;
    stop_dispatching(w);
    if (w.busy < 0) continue;
    // Its last words may still be in the pipe.
    struct pollfd p = {events_, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) drain_events();
    if (w.busy < 0) continue;
    RunOutcome o;
    o.status = RunOutcome::Failed;
    o.exit_code = kExitInternal;
    o.message = "kvlab-sweep: its worker process died";
    totals_.failed++;
    const SweepRun& r = *to_run_[size_t(w.busy)];
    progress_.finished(r.id, run_label(sweep_, r), o);
    w.busy = -1;
  }
}

SweepTotals Coordinator::run() {
  // A worker that died must not kill the coordinator when it is handed a run.
  signal(SIGPIPE, SIG_IGN);
  const size_t n = std::max<size_t>(1, settings_.gpus.size());
  start_workers(std::min(n, std::max<size_t>(1, to_run_.size())));
  for (Worker& w : workers_) dispatch(w);
  fcntl(events_, F_SETFL, fcntl(events_, F_GETFL) | O_NONBLOCK);
  while (any_busy()) {
    struct pollfd p = {events_, POLLIN, 0};
    const int ready = poll(&p, 1, 250);
    if (ready > 0) drain_events();
    if (interrupted() && !stopping_) {
      // A terminal's Ctrl-C reaches every process of the group; a SIGTERM sent to the sweep alone
      // is passed on, and each worker asks its run to stop.
      stopping_ = true;
      totals_.stopped = true;
      for (Worker& w : workers_) {
        if (w.pid > 0) kill(w.pid, SIGTERM);
        if (w.busy < 0) stop_dispatching(w);
      }
    }
    reap_dead_workers();
    progress_.tick();
  }
  for (Worker& w : workers_) stop_dispatching(w);
  for (Worker& w : workers_)
    if (w.pid > 0)
      while (waitpid(w.pid, nullptr, 0) < 0 && errno == EINTR) {
      }
  close(events_);
  progress_.finish();
  if (!stopping_ && next_ < to_run_.size())
    fail("every worker process died; " + std::to_string(to_run_.size() - next_) +
             " runs were not started (run the sweep again to do them)",
         kExitInternal);
  return totals_;
}

}  // namespace

SweepTotals run_sweep_runs(const Sweep& sweep, const std::vector<const SweepRun*>& to_run,
                           const SchedulerSettings& settings, Progress& progress) {
  if (to_run.empty()) return {};
  Coordinator c(sweep, to_run, settings, progress);
  return c.run();
}

}  // namespace kvlab
