// SIGINT and SIGTERM stop kvlab-eval cleanly: it finishes the sample at hand, writes the report
// of the completed samples marked "complete": false with the reason, and exits 130.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;

// The mask of signals the process `pid` catches, from /proc (bit n-1 for signal n).
uint64_t caught_signals(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("SigCgt:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  return 0;
}

struct Interrupted {
  int exit_code = -1;
  std::string err;
  std::string out_dir;
};

// Starts a passkey run far longer than the test, waits until its handlers are installed (the
// model is loaded and samples are running), lets it work a while, then sends `sig`.
Interrupted interrupt_eval(int sig, std::chrono::milliseconds after) {
  Interrupted r;
  r.out_dir = testing::temp_dir();
  const std::string out = r.out_dir + "/report.json", err = r.out_dir + "/../stderr";
  const std::string bin = testing::bin_dir() + "/kvlab-eval";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execl(bin.c_str(), bin.c_str(), "--context", "512", "--depths", "0,0.5,1", "--samples", "1000", "--out", out.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!(caught_signals(pid) & (uint64_t(1) << (sig - 1))) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(after);
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = testing::read_file(err);
  return r;
}

void expect_partial_report(const Interrupted& r, const std::string& reason) {
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  // Exactly the report: no temporary file left beside it.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(r.out_dir)) files.push_back(e.path().filename().string());
  ASSERT_EQ(files, std::vector<std::string>{"report.json"});
  const nlohmann::json report = nlohmann::json::parse(testing::read_file(r.out_dir + "/report.json"));
  EXPECT_EQ(report["complete"], false);
  EXPECT_EQ(report["incomplete_reason"], reason);
  const nlohmann::json& m = report["metrics"];
  const int samples = m["samples"].get<int>();
  EXPECT_GE(samples, 1);
  EXPECT_LT(samples, 3000);
  EXPECT_EQ(m["per_sample"].size(), size_t(samples));
  int in_rows = 0;
  for (const auto& row : m["by_depth"]) in_rows += row["samples"].get<int>();
  EXPECT_EQ(in_rows, samples);
  EXPECT_TRUE(m["accuracy"].is_number());
}

TEST(Interrupt, SigintWritesThePartialReportAndExits130) {
  expect_partial_report(interrupt_eval(SIGINT, std::chrono::milliseconds(300)), "interrupted by SIGINT");
}

TEST(Interrupt, SigtermRightAfterTheStartStillCompletesOneSample) {
  expect_partial_report(interrupt_eval(SIGTERM, std::chrono::milliseconds(0)), "interrupted by SIGTERM");
}

TEST(Interrupt, UninterruptedReportIsComplete) {
  const std::string out = testing::temp_dir() + "/report.json";
  auto r = testing::run_command(testing::bin_dir() + "/kvlab-eval --context 256 --depths 0.5 --samples 1 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(testing::read_file(out));
  EXPECT_EQ(report["complete"], true);
  EXPECT_FALSE(report.contains("incomplete_reason"));
}

}  // namespace
}  // namespace kvlab
