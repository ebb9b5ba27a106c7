#pragma once
// A sweep file: a base kvlab-eval config, lists of models, tasks and cache strategies, and
// parameter axes (grid: cartesian; zip: advancing together), expanded into the runs it names,
// each a fully resolved kvlab-eval config with a stable id. docs/sweeps.md documents the format.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kvlab {

struct SweepRun {
  size_t index = 0;       // position in the expanded sweep (before sharding)
  std::string id;         // run_id(config)
  nlohmann::json config;  // resolved kvlab-eval config; relative paths are relative to Sweep::base_dir
};

struct Sweep {
  std::string path;         // the sweep file
  std::string base_dir;     // relative paths in the file are relative to this: its directory's parent
  std::string name;         // "name", or the file's stem
  std::string results_dir;  // "results_dir" made absolute, or "" when the file names none
  std::vector<SweepRun> runs;
  std::vector<std::string> varying;  // dotted keys whose values differ between runs
};

struct SweepDefaults {
  std::string model;      // the model when the file names none (kvlab-eval's default)
  std::string data_root;  // tasks' default data paths are relative to this (the repository root)
};

// Parses, validates (keys, types, ranges, policy and task names, axis shapes) and expands. Every
// problem is an Error (exit code 2) naming the file and the key. Runs that resolve to the same
// config are one run.
Sweep load_sweep(const std::string& path, const SweepDefaults& defaults);
Sweep parse_sweep(const nlohmann::json& file, const std::string& path, const SweepDefaults& defaults);

// The config kvlab-eval gets: `run.config` with its paths made absolute.
nlohmann::json eval_config_for(const Sweep& sweep, const SweepRun& run);
// The value at a dotted key ("cache_params.span"), or nullptr.
const nlohmann::json* find_dotted(const nlohmann::json& config, const std::string& key);
// Leaves of `config` by dotted key (arrays are leaves).
std::vector<std::pair<std::string, nlohmann::json>> flatten_config(const nlohmann::json& config);
// What tells a run apart besides its task and policy: the budget, the policy's parameters (by
// their own names), then the sweep's other varying keys (a model by its directory's name).
std::vector<std::pair<std::string, std::string>> run_settings(const Sweep& sweep, const SweepRun& run);
// "passkey lacache budget=32 span=2 context=160": task, policy and run_settings.
std::string run_label(const Sweep& sweep, const SweepRun& run);

}  // namespace kvlab
