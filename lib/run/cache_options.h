#pragma once
// The command-line flags that choose a cache policy, shared by every app that runs a model.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cache/cached_sequence.h"

namespace kvlab {

struct CacheFlags {
  std::string policy = "full";
  std::string budget;
  std::vector<std::string> params;  // name=value
  int interval = 0;  // auto
  bool streaming_prefill = false;
  std::string leank_mask;  // LeanK channel mask file; empty = none
  LeanKWindow leank;
};

void add_cache_flags(CLI::App& app, CacheFlags& flags);
// Validates the policy name and every parameter against its spec.
CacheSpec cache_spec_from_flags(const CacheFlags& flags);

}  // namespace kvlab
