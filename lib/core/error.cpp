#include "core/error.h"

#include <cstdio>
#include <exception>
#include <new>

namespace kvlab {

void fail(const std::string& message, ExitCode code) { throw Error(message, code); }

int run_main(const char* app_name, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", app_name, e.what());
    return e.code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of host memory\n", app_name);
    return kExitNoMemory;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", app_name, e.what());
    return kExitInternal;
  }
}

}  // namespace kvlab
