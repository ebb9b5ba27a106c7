#pragma once
// --dump-cache: which original positions every (layer, KV head) keeps, snapshot by snapshot,
// for the first sequence a run feeds (after its prompt, every N decode steps, at its end), so
// users can see a policy's shape (LaCache's ladder) and kvlab-report can draw it.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cache/cached_sequence.h"

namespace kvlab {

struct CacheDumpFlags {
  std::string path;
  int every = 0;
};
void add_cache_dump_flags(CLI::App& app, CacheDumpFlags& flags);

class CacheDump {
 public:
  // Installs itself as `spec`'s snapshot observer when `flags` name a file.
  CacheDump(const CacheDumpFlags& flags, CacheSpec& spec);
  // Writes {"model", "cache", "snapshots": [...]} atomically (nothing when no file was named).
  void write(const std::string& model_dir, const CacheSpec& spec) const;

 private:
  struct State {
    nlohmann::json snapshots = nlohmann::json::array();
    int sequences = 0;  // prompts seen: only the first sequence is recorded
  };
  std::string path_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace kvlab
