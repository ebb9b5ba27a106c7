#pragma once
// Helpers shared by the sweep and report tests: tiny sweeps on the embedded model (a run takes a
// fraction of a second), written into a fresh directory and run with the real apps.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "sweep/results_log.h"
#include "test_support.h"

namespace kvlab::testing {

inline std::string tiny_model() { return source_dir() + "/datasets/models/tiny-random-llama"; }

// A passkey base short enough to run in well under a second: one depth, one sample.
inline nlohmann::json tiny_passkey_base() {
  return {{"backend", "cpu"}, {"context", 160}, {"depths", {0.5}}, {"samples", 1}, {"seed", 0}};
}

// A sweep directory: DIR/configs/sweep.json (so relative paths in it are relative to DIR) and
// results in DIR/results.
struct SweepDir {
  std::string dir = temp_dir();
  std::string file() const { return dir + "/configs/sweep.json"; }
  std::string results() const { return dir + "/results"; }
  void write(const nlohmann::json& sweep) const {
    std::filesystem::create_directories(dir + "/configs");
    write_file(file(), sweep.dump(2));
  }
  // kvlab-sweep on this sweep with `flags`.
  CommandResult sweep(const std::string& flags = "") const {
    return run_command(bin_dir() + "/kvlab-sweep " + file() + " --results-dir " + results() + " " + flags);
  }
  // The dry run's JSON listing: [{"index", "id", "status", "config", "memory", "fits"}].
  nlohmann::json listing(const std::string& flags = "") const {
    CommandResult r = sweep("--dry-run --json " + flags);
    if (r.exit_code != 0) throw std::runtime_error("dry run failed: " + r.err);
    return nlohmann::json::parse(r.out);
  }
  std::vector<nlohmann::json> lines(const std::string& name = "results.jsonl") const {
    return read_jsonl(results() + "/" + name).records;
  }
};

inline std::vector<std::string> ids_of(const std::vector<nlohmann::json>& records) {
  std::vector<std::string> ids;
  for (const nlohmann::json& r : records) ids.push_back(r["id"].get<std::string>());
  return ids;
}

inline std::set<std::string> id_set(const nlohmann::json& listing) {
  std::set<std::string> ids;
  for (const nlohmann::json& r : listing) ids.insert(r["id"].get<std::string>());
  return ids;
}

// An executable script standing in for kvlab-eval: runs `prelude` (shell), then the real one.
inline std::string eval_wrapper(const std::string& dir, const std::string& prelude) {
  const std::string path = dir + "/eval-wrapper.sh";
  write_file(path, "#!/bin/sh\n" + prelude + "\nexec " + bin_dir() + "/kvlab-eval \"$@\"\n");
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

}  // namespace kvlab::testing
