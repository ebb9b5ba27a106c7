#pragma once
// Helpers shared by the tests: where the source tree, binaries and fetched tokenizers are,
// and running an app as a user would.
#include <functional>
#include <string>

namespace kvlab::testing {

// Each is set at build time and may be overridden by the environment variable of its name.
std::string source_dir();     // KVLAB_SOURCE_DIR
std::string bin_dir();        // KVLAB_BIN_DIR (the apps)
std::string tokenizer_dir();  // KVLAB_TOKENIZER_DIR (scripts/fetch_tokenizers.sh output)
std::string golden_dir();     // source_dir() + "/tests/golden"
std::string temp_dir();       // a fresh directory, removed at exit

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `command` through /bin/sh, capturing stdout and stderr.
CommandResult run_command(const std::string& command);

// The message of the kvlab::Error `f` throws ("" when it throws none), which must carry the
// bad-input exit code (a failed expectation otherwise).
std::string error_of(const std::function<void()>& f);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

}  // namespace kvlab::testing
