#include "run/cache_dump.h"

#include "core/atomic_file.h"

namespace kvlab {

void add_cache_dump_flags(CLI::App& app, CacheDumpFlags& f) {
  app.add_option("--dump-cache", f.path,
                 "Write which original positions each layer and KV head keeps (after the prompt, at the end, "
                 "and every --dump-every steps; the first sequence of the run) to this JSON file; "
                 "kvlab-report --cache-dump draws it");
  app.add_option("--dump-every", f.every, "With --dump-cache: also snapshot every N decode steps")
      ->check(CLI::NonNegativeNumber);
}

CacheDump::CacheDump(const CacheDumpFlags& flags, CacheSpec& spec) : path_(flags.path) {
  if (path_.empty()) return;
  spec.snapshot_every = flags.every;
  spec.on_snapshot = [state = state_](const CachedSequence& seq, const std::string& when) {
    if (when == "prefill") state->sequences++;
    if (state->sequences == 1) state->snapshots.push_back(seq.snapshot(when));
  };
}

void CacheDump::write(const std::string& model_dir, const CacheSpec& spec) const {
  if (path_.empty()) return;
  const nlohmann::json j = {{"schema", "kvlab.cache_dump"},
                            {"schema_version", 1},
                            {"model", model_dir},
                            {"cache", to_json(spec)},
                            {"snapshots", state_->snapshots}};
  write_file_atomically(path_, j.dump() + "\n");
}

}  // namespace kvlab
