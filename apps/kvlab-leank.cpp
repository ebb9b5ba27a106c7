// kvlab-leank: LeanK's static K-channel masks. Estimate channel importance without training,
// turn an importance file (estimated, or stage-1 alpha from scripts/leank_train.py) into a mask
// at any sparsity, compare two masks, describe a file. docs/leank.md has the formats.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"
#include "leank/estimate.h"
#include "leank/mask.h"
#include "model/config.h"
#include "model/loaded_model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "run/cli.h"
#include "run/hf_overrides.h"
#include "tasks/text_file.h"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// datasets/text/tinyshakespeare.txt of the working directory, else of the source tree.
std::string default_text() {
  const fs::path here = "datasets/text/tinyshakespeare.txt";
  if (fs::exists(here)) return here.string();
  const fs::path tree = fs::path(KVLAB_DEFAULT_MODEL).parent_path().parent_path() / "text/tinyshakespeare.txt";
  if (fs::exists(tree)) return tree.string();
  kvlab::fail("no --text given and datasets/text/tinyshakespeare.txt is not there: give a calibration text file");
}

// The first `tokens` tokens of `text`, encoding only as much of it as needed (cut at a line end).
std::vector<int32_t> first_tokens(const kvlab::Tokenizer& tok, const std::string& text, size_t tokens) {
  size_t bytes = tokens * 8 + 1024;
  for (;;) {
    size_t cut = text.size();
    if (bytes < text.size()) {
      const size_t nl = text.rfind('\n', bytes);
      cut = nl == std::string::npos || nl == 0 ? text.size() : nl + 1;
    }
    std::vector<int32_t> ids = tok.encode(std::string_view(text).substr(0, cut), false);
    if (ids.size() >= tokens || cut == text.size()) {
      if (ids.size() > tokens) ids.resize(tokens);
      return ids;
    }
    bytes *= 2;
  }
}

json stats_json(const kvlab::ChannelMask& m, const kvlab::MaskStats& s) {
  json hist = json::object();
  for (const auto& [count, heads] : s.histogram) hist[std::to_string(count)] = heads;
  json kept = json::array();
  for (int l = 0; l < m.model.layers; l++) {
    json row = json::array();
    for (int h = 0; h < m.model.kv_heads; h++) row.push_back(m.kept_count(l, h));
    kept.push_back(row);
  }
  return {{"layers", m.model.layers},
          {"kv_heads", m.model.kv_heads},
          {"head_dim", m.model.head_dim},
          {"sparsity_requested", m.sparsity_requested},
          {"sparsity_achieved", m.sparsity_achieved},
          {"alignment", m.alignment},
          {"rope_pairs", m.rope_pairs},
          {"threshold", m.threshold},
          {"importance_source", m.importance_source},
          {"k_kept_fraction", s.k_kept_fraction},
          {"k_reduction", s.k_reduction},
          {"heads", s.heads},
          {"heads_pruned", s.heads_pruned},
          {"heads_full", s.heads_full},
          {"v_reduction", s.v_reduction},
          {"histogram", hist},
          {"layer_kept_fraction", s.layer_kept_fraction},
          {"kept", kept}};
}

struct EstimateArgs {
  std::string model, text, out, backend = "cpu", hf_overrides;
  int tokens = 4096;
  kvlab::EstimateOptions options;
  bool sequence_given = false;
};

int run_estimate(const EstimateArgs& a) {
  const std::string text_path = a.text.empty() ? default_text() : a.text;
  const std::string text = kvlab::read_text_file(text_path, "calibration text");
  kvlab::Tokenizer tok = kvlab::Tokenizer::load(a.model + "/tokenizer.json");
  const std::vector<int32_t> ids = first_tokens(tok, text, size_t(a.tokens));
  const int32_t bos = tok.bos_id() ? *tok.bos_id() : -1;

  const nlohmann::json overrides = kvlab::hf_overrides_from_flag(a.hf_overrides);
  kvlab::ModelConfig config = kvlab::load_model_config(a.model, overrides);
  kvlab::EstimateOptions options = a.options;
  if (!a.sequence_given) options.sequence = std::min(options.sequence, config.context_window());
  auto backend = kvlab::make_backend(kvlab::backend_kind_from_name(a.backend));
  kvlab::LoadedModel m =
      kvlab::load_model(a.model, *backend, options.sequence, true, kvlab::kDefaultPrefillChunk, false, overrides);

  const auto start = std::chrono::steady_clock::now();
  kvlab::ChannelImportance imp = kvlab::estimate_qk_importance(*m.model, ids, bos, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  imp.model.sha256 = m.sha256;
  imp.calibration.file = text_path;
  imp.calibration.sha256 = kvlab::sha256_file(text_path);
  imp.extra["estimate.criterion"] = "mean over observations of mean(q_c^2 over the last window queries and the "
                                    "group's query heads) * mean(k_c^2 over the sequence so far), post-RoPE";
  imp.extra["estimate.sequence"] = std::to_string(options.sequence);
  imp.extra["estimate.chunk"] = std::to_string(options.chunk);
  imp.extra["estimate.window"] = std::to_string(options.window);
  imp.extra["estimate.backend"] = backend->description();
  kvlab::write_importance(a.out, imp);

  std::printf("importance   %s\n", a.out.c_str());
  std::printf("model        %s\n", imp.model.describe().c_str());
  std::printf("calibration  %s: %lld tokens in sequences of %d (chunk %d, window %d), %.2f s on %s\n",
              text_path.c_str(), (long long)imp.calibration.tokens, options.sequence, options.chunk, options.window,
              seconds, backend->description().c_str());
  const size_t per_layer = size_t(imp.model.kv_heads) * size_t(imp.model.head_dim);
  for (int l = 0; l < imp.model.layers; l++) {
    const float* v = imp.values.data() + size_t(l) * per_layer;
    double sum = 0, top = 0;
    for (size_t i = 0; i < per_layer; i++) {
      sum += v[i];
      top = std::max(top, double(v[i]));
    }
    std::printf("layer %-3d    mean score %.4g, max %.4g\n", l, sum / double(per_layer), top);
  }
  return 0;
}

int run_mask(const std::string& importance_path, const std::string& model_dir, double sparsity, int alignment,
             bool rope_pairs, const std::string& out, bool as_json) {
  kvlab::ChannelImportance imp = kvlab::read_importance(importance_path);
  kvlab::ModelConfig config = kvlab::load_model_config(model_dir);
  const std::string sha = kvlab::Checkpoint::open(model_dir).content_sha256();
  kvlab::require_same_model(imp.model, importance_path, kvlab::ModelFingerprint::of(config, sha), model_dir);
  kvlab::ChannelMask mask = kvlab::make_mask(imp, sparsity, alignment, rope_pairs);
  mask.model.sha256 = sha;
  mask.importance_sha256 = kvlab::sha256_file(importance_path);
  kvlab::write_mask(out, mask);
  const kvlab::MaskStats s = kvlab::mask_stats(mask);
  // Clamped stage-1 alpha has many exact zeros: when more values tie at the threshold than one
  // head's rounding step, ">=" keeps them all and the achieved sparsity falls short. The
  // reference does the same; say so rather than leave the user puzzled.
  const int64_t ties = std::count(imp.values.begin(), imp.values.end(), mask.threshold);
  if (as_json) {
    json j = stats_json(mask, s);
    j["mask"] = out;
    j["values_at_threshold"] = ties;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("mask         %s\n%s", out.c_str(), kvlab::format_mask_stats(mask, s).c_str());
    if (ties > alignment)
      std::printf("\nnote: %lld of %zu importance values equal the threshold %g; the rule keeps every value >= the "
                  "threshold, so the achieved sparsity %.4f falls short of the requested %g (as in the reference). "
                  "Ask for a sparsity above their share (%.1f%%), or use the stage-2 importance.\n",
                  (long long)ties, imp.values.size(), double(mask.threshold), mask.sparsity_achieved, sparsity,
                  100.0 * double(ties) / double(imp.values.size()));
  }
  return 0;
}

int run_compare(const std::vector<std::string>& paths, bool as_json) {
  if (paths.size() != 2) kvlab::fail("compare needs exactly two masks: --mask A --mask B");
  const kvlab::ChannelMask a = kvlab::read_mask(paths[0]), b = kvlab::read_mask(paths[1]);
  const kvlab::MaskComparison c = kvlab::compare_masks(a, paths[0], b, paths[1]);
  const double agree = double(c.agree) / double(c.channels);
  if (as_json) {
    json layers = json::array();
    for (const auto& r : c.layers)
      layers.push_back({{"kept_a", r.kept_a}, {"kept_b", r.kept_b}, {"both", r.both}, {"jaccard", r.jaccard()},
                        {"heads_same_count", r.heads_same_count}});
    json j = {{"a", paths[0]},
              {"b", paths[1]},
              {"a_sparsity", a.sparsity_achieved},
              {"b_sparsity", b.sparsity_achieved},
              {"a_source", a.importance_source},
              {"b_source", b.importance_source},
              {"jaccard", c.total.jaccard()},
              {"agreement", agree},
              {"kept_a", c.total.kept_a},
              {"kept_b", c.total.kept_b},
              {"both", c.total.both},
              {"layers", layers}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("A  %s: %s, sparsity %.4f\n", paths[0].c_str(), a.importance_source.c_str(), a.sparsity_achieved);
  std::printf("B  %s: %s, sparsity %.4f\n", paths[1].c_str(), b.importance_source.c_str(), b.sparsity_achieved);
  if (a.model.sha256 != b.model.sha256 && !a.model.sha256.empty() && !b.model.sha256.empty())
    std::printf("note: the masks were made for different checkpoints of the same shape\n");
  std::printf("\n| layer | kept A | kept B | kept in both | Jaccard | heads with equal counts |\n|---|---|---|---|---|---|\n");
  auto row = [&](const std::string& name, const kvlab::MaskComparison::Row& r, int heads) {
    std::printf("| %s | %lld | %lld | %lld | %.3f | %d/%d |\n", name.c_str(), (long long)r.kept_a, (long long)r.kept_b,
                (long long)r.both, r.jaccard(), r.heads_same_count, heads);
  };
  for (size_t l = 0; l < c.layers.size(); l++) row(std::to_string(l), c.layers[l], a.model.kv_heads);
  row("all", c.total, a.model.kv_heads * a.model.layers);
  std::printf("\nsame decision on %.2f%% of %lld channels\n", 100 * agree, (long long)c.channels);
  return 0;
}

int run_inspect(const std::string& path, bool as_json) {
  std::string format;
  {
    auto f = kvlab::SafetensorsFile::open(path);
    auto it = f->metadata().find("format");
    if (it != f->metadata().end()) format = it->second;
  }
  if (format == "kvlab.leank-importance") {
    const kvlab::ChannelImportance imp = kvlab::read_importance(path);
    const size_t per_layer = size_t(imp.model.kv_heads) * size_t(imp.model.head_dim);
    json layers = json::array();
    for (int l = 0; l < imp.model.layers; l++) {
      const float* v = imp.values.data() + size_t(l) * per_layer;
      double sum = 0, lo = v[0], hi = v[0];
      for (size_t i = 0; i < per_layer; i++) {
        sum += v[i];
        lo = std::min(lo, double(v[i]));
        hi = std::max(hi, double(v[i]));
      }
      layers.push_back({{"mean", sum / double(per_layer)}, {"min", lo}, {"max", hi}});
    }
    json j = {{"file", path},
              {"format", format},
              {"model", imp.model.describe()},
              {"source", imp.source},
              {"calibration", {{"file", imp.calibration.file}, {"sha256", imp.calibration.sha256},
                               {"tokens", imp.calibration.tokens}}},
              {"extra", imp.extra},
              {"layers", layers}};
    if (as_json) {
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("importance   %s\nmodel        %s\nsource       %s\n", path.c_str(), imp.model.describe().c_str(),
                imp.source.c_str());
    std::printf("calibration  %s (%lld tokens, sha256 %s)\n", imp.calibration.file.c_str(),
                (long long)imp.calibration.tokens, imp.calibration.sha256.c_str());
    for (const auto& [key, value] : imp.extra) std::printf("%-12s %s\n", key.c_str(), value.c_str());
    for (int l = 0; l < imp.model.layers; l++)
      std::printf("layer %-3d    mean %.4g, min %.4g, max %.4g\n", l, layers[size_t(l)]["mean"].get<double>(),
                  layers[size_t(l)]["min"].get<double>(), layers[size_t(l)]["max"].get<double>());
    return 0;
  }
  const kvlab::ChannelMask mask = kvlab::read_mask(path);  // errors name the file and what it is
  const kvlab::MaskStats s = kvlab::mask_stats(mask);
  if (as_json) {
    json j = stats_json(mask, s);
    j["file"] = path;
    j["model"] = mask.model.describe();
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("mask         %s\n%s", path.c_str(), kvlab::format_mask_stats(mask, s).c_str());
  }
  return 0;
}

int leank_main(int argc, char** argv) {
  CLI::App app{"LeanK static K-channel masks: estimate importance, make masks, compare, inspect.", "kvlab-leank"};
  app.require_subcommand(1);

  EstimateArgs est;
  auto* e = app.add_subcommand("estimate", "Training-free importance (ThinK's q^2 * k^2 criterion) over calibration text");
  e->add_option("--model", est.model, "Hugging Face model directory")->required();
  kvlab::add_hf_overrides_flag(*e, est.hf_overrides);
  e->add_option("--text", est.text, "Calibration text (default: datasets/text/tinyshakespeare.txt)");
  e->add_option("--tokens", est.tokens, "Calibration tokens taken from the start of the text")
      ->check(CLI::Range(2, 1 << 24));
  auto* seq = e->add_option("--sequence", est.options.sequence,
                            "Tokens per calibration sequence, BOS included (default 1024, at most the model's context window)")
                  ->check(CLI::Range(2, 1 << 20));
  e->add_option("--chunk", est.options.chunk, "Prefill chunk; queries are scored at the end of each (default 256)")
      ->check(CLI::Range(2, 1 << 20));
  e->add_option("--window", est.options.window, "Last queries of each chunk whose q^2 counts (ThinK: 32)")
      ->check(CLI::Range(1, 1 << 20));
  e->add_option("--backend", est.backend, "cpu (Eigen reference) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  e->add_option("--out", est.out, "Importance file to write (.safetensors)")->required();

  std::string importance, model_dir, out;
  double sparsity = 0;
  int alignment = 32;
  bool mask_json = false, rope_pairs = false;
  auto* mk = app.add_subcommand("mask", "Turn importance into a mask by LeanK's stage-2 rule and print its stats");
  mk->add_option("--importance", importance, "Importance file (kvlab-leank estimate, or scripts/leank_train.py)")
      ->required();
  mk->add_option("--model", model_dir, "The model directory the importance was made for (checked)")->required();
  mk->add_option("--sparsity", sparsity, "Fraction of K channels to prune, in [0, 1) (LeanK: 0.7 Llama, 0.6 Qwen)")
      ->required();
  mk->add_option("--alignment", alignment, "Kept channels per head are rounded to a multiple of this (default 32)");
  mk->add_option("--out", out, "Mask file to write (.safetensors)")->required();
  mk->add_flag("--rope-pairs", rope_pairs,
               "Keep channels i and i + head_dim/2 together (pairs ranked by summed importance; a kvlab option): "
               "the mask position-shifting cache policies will need");
  mk->add_flag("--json", mask_json, "Print the stats as JSON");

  std::vector<std::string> compare_paths;
  bool compare_json = false;
  auto* cmp = app.add_subcommand("compare", "Channel overlap of two masks, per layer (Jaccard)");
  cmp->add_option("--mask", compare_paths, "A mask file; give --mask twice")->required();
  cmp->add_flag("--json", compare_json, "Print JSON");

  std::string inspect_path;
  bool inspect_json = false;
  auto* ins = app.add_subcommand("inspect", "Describe a mask or importance file");
  ins->add_option("file", inspect_path, "Mask or importance file")->required();
  ins->add_flag("--json", inspect_json, "Print JSON");

  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;
  est.sequence_given = seq->count() > 0;
  if (*e) return run_estimate(est);
  if (*mk) return run_mask(importance, model_dir, sparsity, alignment, rope_pairs, out, mask_json);
  if (*cmp) return run_compare(compare_paths, compare_json);
  return run_inspect(inspect_path, inspect_json);
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-leank", leank_main, argc, argv); }
