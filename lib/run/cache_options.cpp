#include "run/cache_options.h"

#include "cache/registry.h"

namespace kvlab {

void add_cache_flags(CLI::App& app, CacheFlags& f) {
  app.add_option("--cache", f.policy, "Cache policy (see --help-cache): full, streaming, h2o, snapkv, pyramidkv, lacache");
  app.add_option("--budget", f.budget,
                 "Tokens kept per layer and KV head: a count (2048), a fraction of the context (0.25) or K+V "
                 "bytes over all layers (512MiB)");
  app.add_option("--cache-param", f.params, "Policy parameter as name=value (repeatable), e.g. span=16");
  app.add_option("--interval", f.interval,
                 "Decode steps between policy calls (compaction interval); 0 = auto: budget/32 within [1, 64] "
                 "(1 = the papers' evict-every-step)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_flag("--streaming-prefill", f.streaming_prefill,
               "Run the policy after every prefill chunk so memory never exceeds budget + chunk "
               "(default: whole prompt in, then one compaction)");
  app.add_option("--leank-mask", f.leank_mask,
                 "LeanK K-channel mask (kvlab-leank mask): the middle of the context keeps only its K channels; "
                 "composes with every policy (streaming and lacache need a --rope-pairs mask)");
  app.add_option("--leank-sink", f.leank.sink, "LeanK: leading tokens kept at every channel")->check(CLI::NonNegativeNumber);
  app.add_option("--leank-recent", f.leank.recent, "LeanK: most recent tokens kept at every channel")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--leank-accumulate", f.leank.accumulate,
                 "LeanK: decode tokens gathered at every channel before they move to the middle together")
      ->check(CLI::PositiveNumber);
  app.add_flag_callback(
      "--help-cache",
      [] {
        std::printf("Cache policies and their parameters:\n%s", policies_help().c_str());
        throw CLI::Success();
      },
      "List the cache policies and their parameters with defaults, then exit");
}

CacheSpec cache_spec_from_flags(const CacheFlags& f) {
  const PolicyInfo& info = find_policy(f.policy);
  CacheSpec spec;
  spec.policy = f.policy;
  spec.budget = f.budget;
  spec.interval = f.interval;
  spec.streaming_prefill = f.streaming_prefill;
  spec.channel_mask = f.leank_mask;
  spec.leank = f.leank;
  spec.leank.validate();
  for (const std::string& a : f.params) parse_param_assignment(info, a, spec.params);
  resolve_params(info, spec.params);  // errors now, before any model is loaded
  return spec;
}

}  // namespace kvlab
