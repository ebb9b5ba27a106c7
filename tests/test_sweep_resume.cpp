// Resuming a sweep after a stop at any moment: kill -9 while a run is in flight, a torn last
// line, a report without its line, a line without its report, an incomplete report; the lock
// that keeps two sweeps off one directory; appends from many processes at once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "sweep/results_log.h"
#include "sweep_fixture.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::SweepDir;

json four_runs() {
  return {{"base", testing::tiny_passkey_base()},
          {"models", {testing::tiny_model()}},
          {"caches", {"full", {{"cache", "streaming"}, {"grid", {{"budget", {24, 32, 48}}}}}}}};
}

// kvlab-sweep in the background; returns its pid.
pid_t start_sweep(const SweepDir& d, const std::vector<std::string>& flags) {
  std::vector<std::string> args = {testing::bin_dir() + "/kvlab-sweep", d.file(), "--results-dir", d.results()};
  args.insert(args.end(), flags.begin(), flags.end());
  const std::string log = d.dir + "/background.log";
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

template <class Pred>
bool wait_until(Pred pred, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

size_t line_count(const std::string& path) {
  if (!fs::exists(path)) return 0;
  return read_jsonl(path).records.size();
}

void expect_complete_without_duplicates(const SweepDir& d) {
  const std::vector<std::string> ids = testing::ids_of(d.lines());
  const std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size()) << "an id appears twice in results.jsonl";
  EXPECT_EQ(unique, testing::id_set(d.listing()));
  for (const std::string& id : ids) EXPECT_TRUE(fs::exists(d.results() + "/runs/" + id + ".json")) << id;
}

TEST(SweepResume, KilledWithSigkillDuringTheSecondRunResumesWithNothingLostOrDuplicated) {
  SweepDir d;
  d.write(four_runs());
  const json listing = d.listing();
  ASSERT_EQ(listing.size(), 4u);
  const std::string second = listing[1]["id"];
  // Each run takes at least 0.4 s, so the kill lands while the second one is in flight.
  const std::string slow = testing::eval_wrapper(d.dir, "sleep 0.4");
  const pid_t pid = start_sweep(d, {"--eval", slow});
  const std::string results = d.results() + "/results.jsonl";
  ASSERT_TRUE(wait_until([&] { return line_count(results) >= 1; }, 60))
      << testing::read_file(d.dir + "/background.log");
  ASSERT_TRUE(wait_until([&] { return fs::exists(d.results() + "/runs/" + second + ".log"); }, 10));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(line_count(results), 1u) << "killed after the first run and before the second finished";
  // The run in flight died with the sweep: it never finishes behind the next sweep's back.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(fs::exists(d.results() + "/runs/" + second + ".json"));
  EXPECT_EQ(line_count(results), 1u);

  auto resumed = d.sweep();
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("1 done before"), std::string::npos) << resumed.err;
  EXPECT_NE(resumed.err.find("3 to run"), std::string::npos) << resumed.err;
  expect_complete_without_duplicates(d);
  EXPECT_EQ(line_count(results), 4u);
}

TEST(SweepResume, ATornLastLineIsCutAndItsRunKept) {
  SweepDir d;
  d.write(four_runs());
  ASSERT_EQ(d.sweep().exit_code, 0);
  const std::string results = d.results() + "/results.jsonl";
  const std::string text = testing::read_file(results);
  // As if killed in the middle of writing the last line.
  const size_t last = text.rfind('\n', text.size() - 2) + 1;
  const std::string last_id = json::parse(text.substr(last))["id"];
  const std::string last_log = d.results() + "/runs/" + last_id + ".log";
  const auto log_time = fs::last_write_time(last_log);
  fs::resize_file(results, last + (text.size() - last) / 2);
  EXPECT_EQ(read_jsonl(results).torn_bytes, (text.size() - last) / 2);

  auto r = d.sweep();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("torn last line cut, 1 lines added"), std::string::npos) << r.err;
  expect_complete_without_duplicates(d);
  EXPECT_EQ(read_jsonl(results).torn_bytes, 0u);
  EXPECT_EQ(fs::last_write_time(last_log), log_time) << "its report was complete: the run is not redone";
}

TEST(SweepResume, ReportsAndLinesAreMadeWholeAgain) {
  SweepDir d;
  d.write(four_runs());
  ASSERT_EQ(d.sweep().exit_code, 0);
  const std::vector<json> lines = d.lines();
  const std::string a = lines[0]["id"], b = lines[1]["id"], c = lines[2]["id"];
  const std::string results = d.results() + "/results.jsonl";
  // a: its report file vanished; b: its report is there but its line is not (killed between
  // the two); c: its report says it is incomplete (interrupted) and it has no line.
  fs::remove(d.results() + "/runs/" + a + ".json");
  std::string keep;
  for (const json& l : lines)
    if (l["id"] != b && l["id"] != c) keep += l.dump() + "\n";
  testing::write_file(results, keep);
  json partial = json::parse(testing::read_file(d.results() + "/runs/" + c + ".json"));
  partial["complete"] = false;
  testing::write_file(d.results() + "/runs/" + c + ".json", partial.dump());
  const auto b_log = fs::last_write_time(d.results() + "/runs/" + b + ".log");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));

  auto r = d.sweep();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("1 to run"), std::string::npos) << "only the incomplete one runs again: " << r.err;
  expect_complete_without_duplicates(d);
  EXPECT_EQ(json::parse(testing::read_file(d.results() + "/runs/" + a + ".json")), lines[0]["report"]);
  EXPECT_EQ(fs::last_write_time(d.results() + "/runs/" + b + ".log"), b_log);
  EXPECT_EQ(json::parse(testing::read_file(d.results() + "/runs/" + c + ".json"))["complete"], true);
}

TEST(SweepResume, ASecondSweepOnTheSameDirectoryIsRefused) {
  SweepDir d;
  d.write(four_runs());
  const pid_t pid = start_sweep(d, {"--eval", testing::eval_wrapper(d.dir, "sleep 0.3")});
  ASSERT_TRUE(wait_until([&] { return fs::exists(d.results() + "/.lock"); }, 30));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto second = d.sweep();
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_NE(second.err.find("another kvlab-sweep (pid " + std::to_string(pid) + ")"), std::string::npos) << second.err;
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  expect_complete_without_duplicates(d);
}

TEST(SweepResume, SigtermStopsCleanlyAndTheNextSweepFinishes) {
  SweepDir d;
  d.write(four_runs());
  const pid_t pid = start_sweep(d, {"--eval", testing::eval_wrapper(d.dir, "sleep 0.3")});
  ASSERT_TRUE(wait_until([&] { return line_count(d.results() + "/results.jsonl") >= 1; }, 60));
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << testing::read_file(d.dir + "/background.log");
  EXPECT_FALSE(fs::exists(d.results() + "/failures.jsonl")) << "an interrupted run is not a failure";
  auto r = d.sweep();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_complete_without_duplicates(d);
}

TEST(SweepResume, ConcurrentAppendsFromManyProcessesStayWholeLines) {
  const std::string path = testing::temp_dir() + "/log.jsonl";
  constexpr int kWriters = 8, kLines = 40;
  // Lines far longer than PIPE_BUF, so only the lock keeps them from interleaving.
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; w++) {
    const pid_t pid = fork();
    if (pid == 0) {
      for (int i = 0; i < kLines; i++)
        append_jsonl(path,
                     json{{"writer", w}, {"line", i}, {"pad", std::string(20000 + 97 * i, char('a' + w))}}.dump());
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  JsonlContent c = read_jsonl(path);
  ASSERT_EQ(c.records.size(), size_t(kWriters * kLines));
  EXPECT_EQ(c.torn_bytes, 0u);
  std::vector<int> next(kWriters, 0);
  for (const json& r : c.records) {
    const int w = r["writer"];
    EXPECT_EQ(r["line"], next[size_t(w)]++) << "one writer's lines keep their order";
    EXPECT_EQ(r["pad"].get<std::string>(), std::string(20000 + 97 * r["line"].get<size_t>(), char('a' + w)));
  }
}

TEST(SweepResume, AppendCutsATornTailBeforeWriting) {
  const std::string path = testing::temp_dir() + "/log.jsonl";
  append_jsonl(path, R"({"id":"a"})");
  {
    std::ofstream f(path, std::ios::app);
    f << R"({"id":"b","rep)";
  }
  EXPECT_EQ(read_jsonl(path).records.size(), 1u);
  append_jsonl(path, R"({"id":"c"})");
  EXPECT_EQ(testing::read_file(path), "{\"id\":\"a\"}\n{\"id\":\"c\"}\n");
  testing::write_file(path, "{\"id\":\"a\"}\nnot json\n{\"id\":\"c\"}\n");
  try {
    read_jsonl(path);
    ADD_FAILURE() << "a malformed line in the middle was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("log.jsonl:2: not a JSON object"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kvlab
