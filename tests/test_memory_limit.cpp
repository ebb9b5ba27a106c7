// A run that will not fit is refused before allocating: KVLAB_MEMORY_LIMIT caps what the
// backend reports free, so the refusal path is testable on any machine.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;

testing::CommandResult eval_with_limit(const std::string& limit, const std::string& out) {
  return testing::run_command("KVLAB_MEMORY_LIMIT=" + limit + " " + testing::bin_dir() +
                              "/kvlab-eval --context 256 --depths 0.5 --samples 1 --out " + out);
}

TEST(MemoryLimit, RefusedWithBothNumbersOnOneLine) {
  const std::string out = testing::temp_dir() + "/report.json";
  auto r = eval_with_limit("1MiB", out);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("the run needs "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("but only 1.00 MiB is free"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("KVLAB_MEMORY_LIMIT=1MiB"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST(MemoryLimit, UnitsAndARoomyLimit) {
  for (const char* limit : {"1048576", "1024KiB", "1024K", "1.048576MB", "0.0009765625GiB"}) {
    auto r = eval_with_limit(limit, testing::temp_dir() + "/r.json");
    EXPECT_EQ(r.exit_code, 3) << limit << ": " << r.err;
    EXPECT_NE(r.err.find("but only 1.00 MiB is free"), std::string::npos) << limit << ": " << r.err;
  }
  const std::string out = testing::temp_dir() + "/report.json";
  auto r = eval_with_limit("64GiB", out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out));
}

TEST(MemoryLimit, MalformedValueIsBadInput) {
  for (const char* limit : {"banana", "12XB", "-5MiB", "0", "1e3"}) {
    auto r = eval_with_limit(limit, testing::temp_dir() + "/r.json");
    EXPECT_EQ(r.exit_code, 2) << limit << ": " << r.err;
    EXPECT_NE(r.err.find("KVLAB_MEMORY_LIMIT"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace kvlab
