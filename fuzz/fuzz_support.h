#pragma once
// What the fuzz targets share. A target is written once, as KVLAB_FUZZ_TARGET(name) { body }:
// built by fuzz/CMakeLists.txt with -fsanitize=fuzzer it is libFuzzer's LLVMFuzzerTestOneInput;
// included by tests/test_fuzz_regressions.cpp (which defines KVLAB_FUZZ_REPLAY) it registers a
// function that the gtest feeds the saved corpus and crash inputs, so CI replays them without
// clang.
//
// The contract: a parser given arbitrary bytes returns or throws kvlab::Error with the bad-input
// exit code. Any other exception, an internal-error Error, a sanitizer report, a crash or a
// broken property checked by the target is a finding.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <typeinfo>

#include "core/error.h"

// Where the targets find the tree and the fetched tokenizers; set by the build, overridden by
// the environment variables of the same names as the tests use.
#ifndef KVLAB_FUZZ_SOURCE_DIR
#error "define KVLAB_FUZZ_SOURCE_DIR"
#endif
#ifndef KVLAB_FUZZ_TOKENIZER_DIR
#error "define KVLAB_FUZZ_TOKENIZER_DIR"
#endif

namespace kvlab::fuzz {

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
inline std::string source_dir() { return env_or("KVLAB_SOURCE_DIR", KVLAB_FUZZ_SOURCE_DIR); }
inline std::string tokenizer_dir() { return env_or("KVLAB_TOKENIZER_DIR", KVLAB_FUZZ_TOKENIZER_DIR); }

// A broken contract. Under libFuzzer it aborts, so the fuzzer saves the input as a crash; under
// replay it throws, so the gtest names the input and goes on.
struct Finding : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] inline void finding(const std::string& what) {
#ifdef KVLAB_FUZZ_REPLAY
  throw Finding(what);
#else
  std::fprintf(stderr, "kvlab fuzz finding: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
#endif
}

// Runs `body`, letting through only what a user's bad file may cause: a bad-input Error.
template <class Body>
void expect_only_bad_input(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    if (e.code() != kExitBadInput)
      finding("kvlab::Error with exit code " + std::to_string(int(e.code())) + ": " + e.what());
  } catch (const Finding&) {
    throw;
  } catch (const std::exception& e) {
    finding(std::string("exception other than kvlab::Error (") + typeid(e).name() + "): " + e.what());
  }
}

// A directory for the files a target writes, on tmpfs when there is one (each execution writes
// a file, so a disk would be the bottleneck): <base>/kvlab-fuzz-<uid>/<pid>. libFuzzer often
// leaves without running exit handlers (a crash, -runs done), so each process removes the
// directories of processes that are gone instead of relying on its own cleanup.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path base = (fs::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0
                               ? fs::path("/dev/shm")
                               : fs::temp_directory_path()) /
                          ("kvlab-fuzz-" + std::to_string(getuid()));
    fs::create_directories(base, ec);
    for (const auto& e : fs::directory_iterator(base, ec)) {
      const std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") == std::string::npos && kill(pid_t(std::stoll(name)), 0) != 0 &&
          errno == ESRCH)
        fs::remove_all(e.path(), ec);
    }
    const fs::path mine = base / std::to_string(getpid());
    fs::remove_all(mine, ec);
    if (!fs::create_directories(mine, ec)) {
      std::fprintf(stderr, "kvlab fuzz: cannot create %s: %s\n", mine.c_str(), ec.message().c_str());
      std::abort();
    }
    static const std::string removed_at_exit = mine.string();
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(removed_at_exit, ignored);
    });
    return mine.string();
  }();
  return dir;
}

inline void write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), std::streamsize(size));
  if (!f) finding("cannot write the scratch file " + path);
}

#ifdef KVLAB_FUZZ_REPLAY
using TargetFunction = void (*)(const uint8_t* data, size_t size);
inline std::map<std::string, TargetFunction>& targets() {
  static std::map<std::string, TargetFunction> all;
  return all;
}
struct Registration {
  Registration(const char* name, TargetFunction f) { targets()[name] = f; }
};
#endif

}  // namespace kvlab::fuzz

#ifdef KVLAB_FUZZ_REPLAY
#define KVLAB_FUZZ_TARGET(name)                                                                  \
  static void fuzz_body_##name(const uint8_t* data, size_t size);                                \
  static const ::kvlab::fuzz::Registration fuzz_registration_##name(#name, fuzz_body_##name);    \
  static void fuzz_body_##name(const uint8_t* data, size_t size)
#else
#define KVLAB_FUZZ_TARGET(name)                                                                  \
  static void fuzz_body_##name(const uint8_t* data, size_t size);                                \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {                      \
    fuzz_body_##name(data, size);                                                                \
    return 0;                                                                                    \
  }                                                                                              \
  static void fuzz_body_##name(const uint8_t* data, size_t size)
#endif
