#pragma once
// What a task is to kvlab-eval: a name, a description of its protocol, its typed options, and a
// prepare step that turns options into work before any weights are loaded, so bad data fails fast
// and the memory check knows how many tokens the KV store will hold.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvlab {

class Tokenizer;
class Transformer;
struct CacheSpec;
struct ModelConfig;

// One typed, documented option. The config-file key is `name`; the flag is --name with '_' as '-'.
struct TaskOption {
  enum Kind { Int, Float, String, Bool, IntList, FloatList, Path };
  std::string name;
  Kind kind = Int;
  nlohmann::json default_value;  // Path: relative to the repository root
  std::string help;
  double min = -1e300, max = 1e300;  // Int, Float and every list element
  std::vector<std::string> choices;  // String
};

// What a task may look at before the weights load. Everything here outlives the task's run.
struct TaskSetup {
  const Tokenizer& tokenizer;
  const ModelConfig& model;
  const CacheSpec& cache;
  size_t kv_bytes_per_token = 0;  // K + V of one token over all layers, in the backend's KV dtype
};

struct TaskResult {
  nlohmann::json metrics;
  std::string summary;  // one line for the terminal: the score and what it was over
};

struct PreparedTask {
  nlohmann::json config;   // what the report records: resolved options and derived settings
  int context_tokens = 0;  // most tokens one sequence keeps at once: sizes the memory check
  bool all_logits = false;  // it reads every prompt token's logits (the memory check counts them)
  std::vector<std::string> data_files;  // files the task reads: the report records their hashes
  std::function<TaskResult(Transformer&)> run;
};

struct TaskInfo {
  std::string name;
  std::string summary;      // one line
  std::string description;  // prompt (chat or raw), tokens generated, scoring, seed
  std::vector<TaskOption> options;
  // `options` are resolved (validated, defaults filled, paths absolute). Throws Error for bad data.
  // The run stops after the current sample once interrupted() (core/interrupt.h) says so.
  PreparedTask (*prepare)(const nlohmann::json& options, const TaskSetup& setup);
};

}  // namespace kvlab
