#pragma once
// Command-line parsing with kvlab's exit codes: --help exits 0, a usage error prints one line
// and exits 2 (bad input) like every other user mistake.
#include <CLI/CLI.hpp>

namespace kvlab {

// Returns -1 to go on, or the exit code the app should return now.
int parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace kvlab
