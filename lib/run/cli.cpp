#include "run/cli.h"

#include <cstdio>

#include "core/error.h"

namespace kvlab {

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help and friends print to stdout
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: error: %s (see --help)\n", app.get_name().c_str(), e.what());
    return kExitBadInput;
  }
}

}  // namespace kvlab
