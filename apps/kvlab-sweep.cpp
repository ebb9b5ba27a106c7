// kvlab-sweep: expand a sweep file into kvlab-eval runs, run them (resumably, on several GPUs or
// as one shard of a Slurm array) and collect their reports in results.jsonl.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include "core/byte_size.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "run/cli.h"
#include "sweep/merge.h"
#include "sweep/results_dir.h"
#include "sweep/resume.h"
#include "sweep/run_plan.h"
#include "sweep/run_table.h"
#include "sweep/scheduler.h"
#include "sweep/shard.h"
#include "sweep/sweep_file.h"

namespace {

namespace fs = std::filesystem;

struct SweepOptions {
  std::string sweep_file;
  std::string results_dir;
  std::string shard = "0/1";
  std::string gpus;
  std::string memory_limit;
  std::string eval_binary;
  std::string merge_dir;
  bool dry_run = false;
  bool json = false;
  bool retry_failed = false;
  bool print_results_dir = false;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// "0,1,3" or "auto" (the devices CUDA_VISIBLE_DEVICES grants, as under Slurm).
std::vector<std::string> parse_gpus(const std::string& text) {
  if (text.empty()) return {};
  std::vector<std::string> gpus;
  if (text == "auto") {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    gpus = split_list(visible ? visible : "");
    if (gpus.empty()) kvlab::fail("--gpus auto: CUDA_VISIBLE_DEVICES names no device");
    return gpus;
  }
  gpus = split_list(text);
  for (const std::string& g : gpus)
    if (g.find_first_not_of("0123456789") != std::string::npos)
      kvlab::fail("--gpus \"" + text + "\": give device indices such as 0,1,2 (or auto)");
  if (gpus.empty()) kvlab::fail("--gpus \"" + text + "\" names no device");
  return gpus;
}

std::string self_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

// One sweep per shard of a results directory at a time: a second one would run the same runs.
int lock_shard(const kvlab::ResultsLayout& layout) {
  const int fd = open(layout.lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) kvlab::fail(layout.lock_file + ": cannot open");
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    kvlab::fail("another kvlab-sweep (pid " + std::string(n > 0 ? pid : "?") + ") is running this sweep in " +
                layout.dir + "; wait for it or stop it first");
  }
  const std::string pid = std::to_string(getpid());
  const bool written = ftruncate(fd, 0) == 0 && pwrite(fd, pid.data(), pid.size(), 0) == ssize_t(pid.size());
  (void)written;  // the pid only serves the message above
  return fd;
}

int merge_main(const std::string& dir) {
  const kvlab::MergeCounts c = kvlab::merge_shards(dir);
  std::printf(
      "merged %zu shard files into %s/results.jsonl: %zu lines added, %zu already there; %zu failure "
      "records added to failures.jsonl%s\n",
      c.shard_files, dir.c_str(), c.added, c.already, c.failures_added,
      c.reports_restored ? (", " + std::to_string(c.reports_restored) + " reports restored").c_str() : "");
  return 0;
}

int sweep_main(int argc, char** argv) {
  CLI::App app{
      "Run every kvlab-eval run a sweep file names, resumably, and collect the reports in "
      "RESULTS_DIR/results.jsonl (see docs/sweeps.md).",
      "kvlab-sweep"};
  SweepOptions o;
  app.add_option("sweep", o.sweep_file, "Sweep file (JSON): base config, models, tasks, caches, grid and zip axes");
  app.add_option("--results-dir", o.results_dir,
                 "Where results go (default: the file's results_dir, else results/<sweep name>)");
  app.add_flag("--dry-run", o.dry_run,
               "List the runs with their predicted memory and status, then exit (3 if any will not fit)");
  app.add_flag("--json", o.json, "With --dry-run: print the listing as JSON");
  app.add_option("--shard", o.shard, "Run shard I of N (I/N, 0 <= I < N): runs sorted by id, every N-th from I");
  app.add_option("--gpus", o.gpus,
                 "One worker per GPU, e.g. 0,1,2,3 (each run sees CUDA_VISIBLE_DEVICES=<its GPU>); auto: the "
                 "devices CUDA_VISIBLE_DEVICES lists");
  app.add_flag("--retry-failed", o.retry_failed, "Run again the runs that failed before (default: skip them)");
  app.add_option("--memory-limit", o.memory_limit,
                 "Memory one run may use (e.g. 40GiB); runs predicted to need more are refused before any starts "
                 "(default: what the device has free)");
  app.add_option("--eval", o.eval_binary, "The kvlab-eval to run (default: the one beside kvlab-sweep)");
  app.add_flag("--print-results-dir", o.print_results_dir, "Print where the results go, then exit (for scripts)");
  app.add_option("--merge", o.merge_dir,
                 "Merge the shards' results in this directory into results.jsonl and failures.jsonl, then exit");
  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;
  if (!o.merge_dir.empty()) return merge_main(o.merge_dir);
  if (o.sweep_file.empty()) kvlab::fail("give a sweep file (or --merge DIR); see --help");

  // Every check comes before anything is written or run: the file, the flags, the memory.
  const fs::path repo = fs::path(KVLAB_DEFAULT_MODEL).parent_path().parent_path().parent_path();
  const kvlab::Sweep sweep = kvlab::load_sweep(o.sweep_file, {KVLAB_DEFAULT_MODEL, repo.string()});
  const kvlab::Shard shard = kvlab::parse_shard(o.shard);
  std::string dir = o.results_dir;
  if (dir.empty()) dir = sweep.results_dir;
  if (dir.empty()) dir = (fs::path(sweep.base_dir) / "results" / sweep.name).string();
  dir = fs::absolute(dir).lexically_normal().string();
  if (o.print_results_dir) {
    std::printf("%s\n", dir.c_str());
    return 0;
  }
  const kvlab::ResultsLayout layout = kvlab::results_layout(dir, shard);
  const std::vector<const kvlab::SweepRun*> mine = kvlab::select_shard(sweep.runs, shard);
  const std::vector<std::string> gpus = parse_gpus(o.gpus);
  if (!o.memory_limit.empty()) {
    std::optional<double> limit = kvlab::parse_byte_size(o.memory_limit);
    if (!limit || *limit < 1) kvlab::fail("--memory-limit \"" + o.memory_limit + "\" is not a size (e.g. 40GiB)");
    setenv("KVLAB_MEMORY_LIMIT", o.memory_limit.c_str(), 1);  // kvlab-eval applies the same cap
  }
  if (o.eval_binary.empty()) o.eval_binary = self_dir() + "/kvlab-eval";
  if (access(o.eval_binary.c_str(), X_OK) != 0) kvlab::fail(o.eval_binary + ": no kvlab-eval to run (see --eval)");

  kvlab::ResumeScan scan = kvlab::scan_results(layout, mine, o.retry_failed, false);
  const kvlab::MemoryCheck memory = kvlab::check_memory(sweep, mine, scan.status, o.dry_run, gpus, !o.dry_run);
  std::string limits = memory.limits_text();
  if (!o.memory_limit.empty()) limits += " (--memory-limit " + o.memory_limit + ")";
  const std::string in_shard = shard.whole() ? "" : " in shard " + o.shard;
  if (o.dry_run) {
    if (o.json)
      std::printf("%s\n", kvlab::run_table_json(memory.runs).dump(2).c_str());
    else
      std::printf("%s", kvlab::format_run_table(sweep, memory.runs).c_str());
    std::fflush(stdout);
    size_t done = 0, failed = 0;
    for (kvlab::RunStatus st : scan.status)
      done += st == kvlab::RunStatus::Done, failed += st == kvlab::RunStatus::FailedEarlier;
    std::fprintf(stderr,
                 "kvlab-sweep: %zu runs%s: %zu done, %zu failed before, %zu to run; memory one run may use: %s\n",
                 mine.size(), in_shard.c_str(), done, failed, mine.size() - done - failed, limits.c_str());
    if (!memory.unknown_why.empty())
      std::fprintf(stderr, "kvlab-sweep: memory not checked: %s\n", memory.unknown_why.c_str());
  }
  if (!memory.refused.empty()) {
    std::string list;
    for (const kvlab::PlannedRun* p : memory.refused)
      list += "\n  " + p->run->id + " (" + kvlab::run_label(sweep, *p->run) + ") needs " +
              kvlab::format_bytes(p->plan.total());
    kvlab::fail(std::to_string(memory.refused.size()) + " runs will not fit in the memory one run may use (" + limits +
                    "); nothing was run:" + list,
                kvlab::kExitNoMemory);
  }
  if (o.dry_run) return 0;

  // Now the directory is ours: repair what a kill left behind, then run what is not done.
  std::error_code ec;
  fs::create_directories(layout.runs_dir, ec);
  if (ec) kvlab::fail(layout.runs_dir + ": cannot create: " + ec.message());
  const int lock = lock_shard(layout);
  scan = kvlab::scan_results(layout, mine, o.retry_failed, true);
  std::vector<const kvlab::SweepRun*> to_run;
  size_t done = 0, failed_earlier = 0;
  for (size_t i = 0; i < mine.size(); i++) {
    done += scan.status[i] == kvlab::RunStatus::Done;
    failed_earlier += scan.status[i] == kvlab::RunStatus::FailedEarlier;
    if (scan.status[i] == kvlab::RunStatus::ToRun) to_run.push_back(mine[i]);
  }
  std::fprintf(stderr,
               "kvlab-sweep: sweep %s: %zu runs%s; %zu done before, %zu failed before%s, %zu to run on %zu "
               "worker(s); results in %s\n",
               sweep.name.c_str(), mine.size(), in_shard.c_str(), done, failed_earlier,
               failed_earlier ? " (--retry-failed runs them again)" : "", to_run.size(),
               std::max<size_t>(1, gpus.size()), dir.c_str());
  if (scan.torn_bytes || scan.lines_added || scan.reports_restored)
    std::fprintf(stderr,
                 "kvlab-sweep: repaired after an earlier stop: %zu bytes of a torn last line cut, %d lines "
                 "added for complete reports, %d report files restored from their lines\n",
                 scan.torn_bytes, scan.lines_added, scan.reports_restored);

  kvlab::install_interrupt_handlers();
  kvlab::SchedulerSettings settings{{o.eval_binary, layout}, gpus};
  kvlab::Progress progress(to_run.size(), std::max<size_t>(1, gpus.size()), isatty(STDERR_FILENO));
  const kvlab::SweepTotals t = kvlab::run_sweep_runs(sweep, to_run, settings, progress);
  close(lock);

  const size_t failed = t.failed + failed_earlier;
  std::fprintf(stderr, "kvlab-sweep: %zu of %zu runs complete (%zu now); %zu failed%s\n", done + t.ok, mine.size(),
               t.ok, failed, failed ? (" (see " + layout.failures_file + ")").c_str() : "");
  std::printf("%s\n", layout.results_file.c_str());
  if (t.stopped || t.interrupted) {
    std::fprintf(stderr, "kvlab-sweep: %s; run the same command again to resume\n", kvlab::interrupt_reason().c_str());
    return kvlab::kExitInterrupted;
  }
  if (failed) {
    std::fprintf(stderr,
                 "kvlab-sweep: %zu runs failed; their logs are in %s/<id>.log; --retry-failed runs them again\n",
                 failed, layout.runs_dir.c_str());
    return kvlab::kExitRunsFailed;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-sweep", sweep_main, argc, argv); }
