// kvlab-eval: one task on one model → a schema-versioned JSON report.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/environment.h"
#include "core/error.h"
#include "run/cli.h"
#include "model/loaded_model.h"
#include "model/tokenizer.h"
#include "run/cache_options.h"
#include "run/report.h"
#include "tasks/passkey.h"

namespace {

using nlohmann::json;

struct EvalOptions {
  std::string model = KVLAB_DEFAULT_MODEL;
  std::string tokenizer;  // default: the model directory's tokenizer.json
  std::string task = "passkey";
  std::string backend = "cpu";
  std::string out;
  kvlab::PasskeyOptions passkey;
  kvlab::CacheFlags cache;
};

// A config file holds the same settings as the flags; flags given on the command line win.
void apply_config_file(const std::string& path, EvalOptions& o, const CLI::App& app) {
  std::ifstream f(path);
  if (!f) kvlab::fail(path + ": cannot open config file");
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) kvlab::fail(path + ": not a JSON object");
  auto given = [&](const char* flag) { return app.count(flag) > 0; };
  for (auto& [key, value] : j.items()) {
    try {
      if (key == "model") {
        if (!given("--model")) o.model = value.get<std::string>();
      } else if (key == "tokenizer") {
        if (!given("--tokenizer")) o.tokenizer = value.get<std::string>();
      } else if (key == "task") {
        if (!given("--task")) o.task = value.get<std::string>();
      } else if (key == "backend") {
        if (!given("--backend")) o.backend = value.get<std::string>();
      } else if (key == "out") {
        if (!given("--out")) o.out = value.get<std::string>();
      } else if (key == "context") {
        if (!given("--context")) o.passkey.context_tokens = value.get<int>();
      } else if (key == "depths") {
        if (!given("--depths")) o.passkey.depths = value.get<std::vector<double>>();
      } else if (key == "samples") {
        if (!given("--samples")) o.passkey.samples_per_depth = value.get<int>();
      } else if (key == "seed") {
        if (!given("--seed")) o.passkey.seed = value.get<uint64_t>();
      } else if (key == "cache") {
        if (!given("--cache")) o.cache.policy = value.get<std::string>();
      } else if (key == "budget") {
        if (!given("--budget")) o.cache.budget = value.is_string() ? value.get<std::string>() : value.dump();
      } else if (key == "cache_params") {
        if (!given("--cache-param"))
          for (auto& [name, v] : value.items())
            o.cache.params.push_back(name + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
      } else if (key == "interval") {
        if (!given("--interval")) o.cache.interval = value.get<int>();
      } else if (key == "streaming_prefill") {
        if (!given("--streaming-prefill")) o.cache.streaming_prefill = value.get<bool>();
      } else {
        kvlab::fail(path + ": unknown key \"" + key +
                    "\" (known: model, tokenizer, task, backend, out, context, depths, samples, seed, cache, "
                    "budget, cache_params, interval, streaming_prefill)");
      }
    } catch (const json::exception&) {
      kvlab::fail(path + ": key \"" + key + "\" has the wrong type: " + value.dump());
    }
  }
  // Relative model paths in a config are relative to the config file's directory's parent
  // (the repository root for configs/), so a config works from any working directory.
  std::filesystem::path base = std::filesystem::path(path).parent_path().parent_path();
  if (!given("--model") && j.contains("model") && std::filesystem::path(o.model).is_relative())
    o.model = (base / o.model).lexically_normal().string();
}

std::string default_out(const EvalOptions& o) {
  std::string stamp = kvlab::utc_timestamp();
  for (char& c : stamp)
    if (c == ':') c = '-';
  return "results/eval-" + o.task + "-" + std::filesystem::path(o.model).filename().string() + "-" + stamp + ".json";
}

int eval_main(int argc, char** argv) {
  CLI::App app{"Run one long-context task on one model and write a JSON report.", "kvlab-eval"};
  EvalOptions o;
  std::string config_path;
  std::string depths;
  app.add_option("--config", config_path, "JSON file with any of the settings below (flags override it)");
  app.add_option("--model", o.model, "Hugging Face model directory (default: the embedded tiny model)");
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json (default: the one in the model directory)");
  app.add_option("--task", o.task, "Task to run")->check(CLI::IsMember({"passkey"}));
  app.add_option("--backend", o.backend, "cpu (Eigen reference) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--context", o.passkey.context_tokens, "Prompt length in tokens")->check(CLI::PositiveNumber);
  app.add_option("--depths", depths, "Needle depths as fractions, comma-separated (default 0,0.25,0.5,0.75,1)");
  app.add_option("--samples", o.passkey.samples_per_depth, "Samples per depth")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.passkey.seed, "Seed for the hidden numbers");
  app.add_option("--out", o.out, "Report path (default results/eval-<task>-<model>-<time>.json)");
  kvlab::add_cache_flags(app, o.cache);
  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;

  if (!config_path.empty()) apply_config_file(config_path, o, app);
  if (!depths.empty()) {
    o.passkey.depths.clear();
    std::stringstream ss(depths);
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        o.passkey.depths.push_back(std::stod(item));
      } catch (const std::exception&) {
        kvlab::fail("--depths: \"" + item + "\" is not a number");
      }
    }
  }
  if (o.task != "passkey") kvlab::fail("unknown task \"" + o.task + "\" (available: passkey)");
  const kvlab::CacheSpec cache = kvlab::cache_spec_from_flags(o.cache);
  if (o.out.empty()) o.out = default_out(o);
  if (o.tokenizer.empty()) o.tokenizer = o.model + "/tokenizer.json";

  auto backend = kvlab::make_backend(kvlab::backend_kind_from_name(o.backend));
  kvlab::LoadedModel m = kvlab::load_model(o.model, *backend, o.passkey.context_tokens);
  kvlab::Tokenizer tok = kvlab::Tokenizer::load(o.tokenizer);
  if (tok.vocab_size() > m.config.vocab_size)
    kvlab::fail(o.tokenizer + ": tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model's " +
                "vocab_size is " + std::to_string(m.config.vocab_size));

  json metrics = kvlab::run_passkey(*m.model, tok, o.passkey, cache);
  json config = {{"task", o.task},
                 {"backend", o.backend},
                 {"tokenizer", o.tokenizer},
                 {"cache", kvlab::to_json(cache)},
                 {"passkey", kvlab::to_json(o.passkey)}};
  kvlab::MemoryPlan plan = kvlab::plan_memory(m.config, o.passkey.context_tokens, m.model->max_chunk(),
                                              kvlab::plan_dtypes(*backend, m.config));
  kvlab::write_report(o.out, kvlab::make_report(m, backend->description(), o.task, config, plan, metrics));
  std::printf("%s on %s, cache %s: accuracy %.3f over %d samples (context %d tokens); KV kept %s; decode %.1f "
              "tokens/s\nreport: %s\n",
              o.task.c_str(), m.dir.c_str(), cache.policy.c_str(), metrics["accuracy"].get<double>(),
              metrics["samples"].get<int>(), o.passkey.context_tokens,
              kvlab::format_bytes(metrics["kv_bytes_kept_peak"].get<size_t>()).c_str(),
              metrics["decode_tokens_per_s"].get<double>(), o.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-eval", eval_main, argc, argv); }
