// kvlab-bench: prefill and decode speed of a model (checkpoint or named shape with random
// weights) at several context lengths, against the bandwidth roofline measured in the same run.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/environment.h"
#include "core/error.h"
#include "leank/mask.h"
#include "model/loaded_model.h"
#include "model/memory_plan.h"
#include "model/shapes.h"
#include "run/cache_options.h"
#include "run/cli.h"
#include "run/hf_overrides.h"
#include "run/speed_bench.h"

namespace {

int bench_main(int argc, char** argv) {
  CLI::App app{"Measure prefill/decode speed and memory at context lengths, as a fraction of the roofline.",
               "kvlab-bench"};
  std::string model_dir, shape, backend_name = "cuda", out_json, out_md;
  kvlab::SpeedBenchOptions o;
  kvlab::CacheFlags cache;
  int chunk = kvlab::kDefaultPrefillChunk;
  auto* m = app.add_option("--model", model_dir, "Hugging Face model directory");
  auto* s = app.add_option("--shape", shape, "Named shape with random bf16 weights (see --list-shapes)");
  m->excludes(s);
  s->excludes(m);
  std::string overrides;
  kvlab::add_hf_overrides_flag(app, overrides);
  app.add_option("--contexts", o.contexts, "Context lengths in tokens (space- or comma-separated)")
      ->delimiter(',');
  app.add_option("--decode-tokens", o.decode_tokens, "Timed decode steps per context")->check(CLI::PositiveNumber);
  app.add_option("--warmup-tokens", o.warmup_tokens, "Untimed decode steps before timing")->check(CLI::NonNegativeNumber);
  app.add_option("--prompt-reps", o.prompt_repetitions,
                 "Prompts timed per context, each into a fresh cache; TTFT is their median (all of them in the "
                 "JSON). A GPU under its power cap runs a prompt after idle faster than back-to-back ones")
      ->check(CLI::Range(1, 1000));
  app.add_option("--chunk", chunk,
                 "Prefill chunk in tokens: larger reads the weights fewer times a prompt and takes more scratch "
                 "(the memory plan counts it)")
      ->check(CLI::PositiveNumber);
  app.add_option("--backend", backend_name, "cuda or cpu")->check(CLI::IsMember({"cpu", "cuda"}));
  kvlab::add_cache_flags(app, cache);
  double leank_sparsity = -1;
  app.add_option("--leank-sparsity", leank_sparsity,
                 "LeanK at this K sparsity with a synthetic mask (alignment 32; RoPE pairs kept together under a "
                 "--cache policy), for --shape (instead of --leank-mask)");
  app.add_option("--json", out_json, "Write the results as JSON here");
  app.add_option("--markdown", out_md, "Write the results as a Markdown table here");
  app.add_flag_callback(
      "--list-shapes",
      [] {
        for (const std::string& n : kvlab::shape_names()) std::printf("%s\n", n.c_str());
        throw CLI::Success();
      },
      "List the named shapes and exit");
  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;
  if (model_dir.empty() && shape.empty()) kvlab::fail("give --model DIR or --shape NAME");
  o.cache = kvlab::cache_spec_from_flags(cache);

  auto backend = kvlab::make_backend(kvlab::backend_kind_from_name(backend_name));
  int max_context = 0;
  for (int c : o.contexts) max_context = std::max(max_context, c);
  const int planned = max_context + o.warmup_tokens + o.decode_tokens;
  std::unique_ptr<kvlab::Transformer> model;
  std::string name;
  const nlohmann::json hf_overrides = kvlab::hf_overrides_from_flag(overrides);
  if (!shape.empty()) {
    kvlab::ModelConfig cfg = kvlab::shape_config(shape, hf_overrides);
    kvlab::require_fits(kvlab::plan_memory(cfg, planned, chunk, kvlab::plan_dtypes(*backend, cfg)), *backend);
    model = std::make_unique<kvlab::Transformer>(cfg, *backend, kvlab::random_weights(cfg, *backend, 1), chunk);
    name = shape + " (random)";
  } else {
    kvlab::LoadedModel lm = kvlab::load_model(model_dir, *backend, planned, false, chunk, false, hf_overrides);
    model = std::move(lm.model);
    name = model_dir;
  }
  if (!cache.leank_mask.empty() && leank_sparsity >= 0) kvlab::fail("give --leank-mask or --leank-sparsity, not both");
  o.leank = o.cache.leank;
  if (!cache.leank_mask.empty())
    o.leank_mask = kvlab::read_mask(cache.leank_mask, kvlab::ModelFingerprint::of(model->config()), name);
  if (leank_sparsity >= 0) {
    // Under a token policy the mask keeps RoPE pairs together, which re-rotating policies need.
    o.leank_mask = kvlab::make_mask(kvlab::synthetic_importance(model->config(), 1), leank_sparsity, 32,
                                    o.cache.policy != "full");
    name += ", LeanK " + std::to_string(o.leank_mask->sparsity_achieved).substr(0, 5);
  }
  if (o.leank_mask) o.leank.validate();
  // Under a token policy LeanK runs inside CachedSequence, which reads its mask from a file
  // (as kvlab-eval does): a synthetic mask is written to a temporary one for the run.
  std::string synthetic_mask_file;
  if (o.leank_mask && o.cache.policy != "full" && o.cache.channel_mask.empty()) {
    synthetic_mask_file = (std::filesystem::temp_directory_path() /
                           ("kvlab-bench-mask-" + std::to_string(::getpid()) + ".safetensors"))
                              .string();
    kvlab::write_mask(synthetic_mask_file, *o.leank_mask);
    o.cache.channel_mask = synthetic_mask_file;
  }
  struct RemoveFile {
    const std::string& path;
    ~RemoveFile() {
      if (!path.empty()) std::remove(path.c_str());
    }
  } remove_mask{synthetic_mask_file};
  const double bandwidth = backend->measure_copy_bandwidth();
  std::vector<kvlab::SpeedRow> rows = kvlab::run_speed_bench(*model, o, bandwidth);

  nlohmann::json j = {{"schema", "kvlab.bench"},
                      {"schema_version", 1},
                      {"environment", kvlab::environment_json(backend->description())},
                      {"model", name},
                      {"cache", kvlab::to_json(o.cache)},
                      {"prefill_chunk", model->max_chunk()},
                      {"prompt_repetitions", o.prompt_repetitions},
                      {"copy_bandwidth_bytes_per_s", bandwidth},
                      {"weight_bytes_read_per_token", kvlab::decode_weight_bytes(*model)},
                      {"leank", o.leank_mask ? nlohmann::json{{"sparsity_achieved", o.leank_mask->sparsity_achieved},
                                                              {"sink", o.leank.sink},
                                                              {"recent", o.leank.recent},
                                                              {"accumulate", o.leank.accumulate}}
                                             : nlohmann::json()},
                      {"rows", nlohmann::json::array()}};
  for (const auto& r : rows) j["rows"].push_back(kvlab::to_json(r));
  if (o.cache.policy != "full") name += ", " + o.cache.policy + " budget " + o.cache.budget;
  std::string table = kvlab::markdown_table(name, backend_name, rows);
  std::printf("copy bandwidth %.1f GB/s (read + write), prefill chunk %d tokens\n", bandwidth / 1e9,
              model->max_chunk());
  // The first prompt follows idle; the others follow one another (see --prompt-reps).
  if (o.prompt_repetitions > 1)
    for (const kvlab::SpeedRow& r : rows) {
      const auto [lo, hi] = std::minmax_element(r.ttft_all_s.begin(), r.ttft_all_s.end());
      std::printf("TTFT at %d tokens over %zu prompts: first %.4f s, median %.4f s, range %.4f-%.4f s\n", r.context,
                  r.ttft_all_s.size(), r.ttft_all_s.front(), r.ttft_s, *lo, *hi);
    }
  std::printf("%s", table.c_str());
  if (!out_json.empty()) kvlab::write_file_atomically(out_json, j.dump(2) + "\n");
  if (!out_md.empty()) kvlab::write_file_atomically(out_md, table);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-bench", bench_main, argc, argv); }
