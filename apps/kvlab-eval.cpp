// kvlab-eval: one task on one model → a schema-versioned JSON report.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/environment.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/json_input.h"
#include "leank/demotion.h"
#include "leank/mask.h"
#include "model/loaded_model.h"
#include "model/memory_plan.h"
#include "model/tokenizer.h"
#include "run/cache_dump.h"
#include "run/cache_options.h"
#include "run/cli.h"
#include "run/hf_overrides.h"
#include "run/report.h"
#include "tasks/registry.h"
#include "tasks/text_file.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct EvalOptions {
  std::string model = KVLAB_DEFAULT_MODEL;
  std::string tokenizer;  // default: the model directory's tokenizer.json
  std::string task = "passkey";
  std::string backend = "cpu";
  std::string out;
  std::string hf_overrides;  // JSON text
  kvlab::CacheFlags cache;
};

// A config file holds the same settings as the flags; flags given on the command line win. Keys
// that are not general settings go to the task, which rejects those it does not take.
void apply_config_file(const std::string& path, EvalOptions& o, kvlab::TaskOptionSources& task, const CLI::App& app) {
  json j = kvlab::parse_json_input(kvlab::read_file_bytes(path, "config"), path);
  if (!j.is_object()) kvlab::fail(path + ": not a JSON object");
  auto given = [&](const char* flag) { return app.count(flag) > 0; };
  // Relative paths in a config are relative to its directory's parent (the repository root for
  // configs/), so a config works from any working directory.
  const fs::path base = fs::absolute(path).parent_path().parent_path();
  task.config_path = path;
  task.config_base = base.string();
  for (auto& [key, value] : j.items()) {
    try {
      if (key == "model") {
        if (!given("--model")) o.model = (base / value.get<std::string>()).lexically_normal().string();
      } else if (key == "hf_overrides") {
        if (!given("--hf-overrides")) o.hf_overrides = value.dump();
      } else if (key == "tokenizer") {
        if (!given("--tokenizer")) o.tokenizer = value.get<std::string>();
      } else if (key == "task") {
        if (!given("--task")) o.task = value.get<std::string>();
      } else if (key == "backend") {
        if (!given("--backend")) o.backend = value.get<std::string>();
      } else if (key == "out") {
        if (!given("--out")) o.out = value.get<std::string>();
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
      } else if (key == "leank_mask") {
        if (!given("--leank-mask")) o.cache.leank_mask = (base / value.get<std::string>()).lexically_normal().string();
      } else if (key == "leank_sink") {
        if (!given("--leank-sink")) o.cache.leank.sink = value.get<int>();
      } else if (key == "leank_recent") {
        if (!given("--leank-recent")) o.cache.leank.recent = value.get<int>();
      } else if (key == "leank_accumulate") {
        if (!given("--leank-accumulate")) o.cache.leank.accumulate = value.get<int>();
      } else {
        task.config[key] = value;
      }
    } catch (const json::exception&) {
      kvlab::fail(path + ": key \"" + key + "\" has the wrong type: " + value.dump());
    }
  }
}

// How --help shows a task option's value.
std::string value_name(const kvlab::TaskOption& t) {
  switch (t.kind) {
    case kvlab::TaskOption::Int: return "INT";
    case kvlab::TaskOption::Float: return "NUM";
    case kvlab::TaskOption::IntList: return "INT,...";
    case kvlab::TaskOption::FloatList: return "NUM,...";
    case kvlab::TaskOption::Path: return "FILE";
    case kvlab::TaskOption::Bool: break;
    case kvlab::TaskOption::String: {
      std::string s;
      for (const std::string& c : t.choices) s += (s.empty() ? "" : "|") + c;
      return s.empty() ? "TEXT" : s;
    }
  }
  return "";
}

std::string default_out(const EvalOptions& o) {
  std::string stamp = kvlab::utc_timestamp();
  for (char& c : stamp)
    if (c == ':') c = '-';
  return "results/eval-" + o.task + "-" + fs::path(o.model).filename().string() + "-" + stamp + ".json";
}

int eval_main(int argc, char** argv) {
  CLI::App app{"Run one long-context task on one model and write a JSON report.", "kvlab-eval"};
  EvalOptions o;
  std::string config_path;
  app.add_option("--config", config_path, "JSON file with any of the settings below (flags override it)");
  app.add_option("--model", o.model, "Hugging Face model directory (default: the embedded tiny model)");
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json (default: the one in the model directory)");
  kvlab::add_hf_overrides_flag(app, o.hf_overrides);
  app.add_option("--task", o.task, "Task to run: passkey, niah, perplexity or qa (see --help-tasks)");
  app.add_option("--backend", o.backend, "cpu (Eigen reference) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--out", o.out, "Report path (default results/eval-<task>-<model>-<time>.json)");
  kvlab::add_cache_flags(app, o.cache);
  kvlab::CacheDumpFlags dump_flags;
  kvlab::add_cache_dump_flags(app, dump_flags);
  // Every task's options as flags; the chosen task rejects those it does not take.
  const std::vector<kvlab::TaskOption> task_options = kvlab::all_task_options();
  std::map<std::string, std::string> task_text;
  std::map<std::string, bool> task_switch;
  for (const kvlab::TaskOption& t : task_options) {
    if (t.kind == kvlab::TaskOption::Bool)
      app.add_flag(kvlab::option_flag(t.name), task_switch[t.name], t.help);
    else
      app.add_option(kvlab::option_flag(t.name), task_text[t.name], t.help)->type_name(value_name(t));
  }
  app.add_flag_callback(
      "--help-tasks",
      [] {
        std::printf("Tasks, how each builds its prompt, generates and scores, and its options:\n\n%s",
                    kvlab::tasks_help().c_str());
        throw CLI::Success();
      },
      "Describe every task and its options with defaults, then exit");
  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;

  kvlab::TaskOptionSources sources;
  // The embedded model sits in the repository's datasets/models/; default data paths are
  // relative to that repository.
  sources.default_base = fs::path(KVLAB_DEFAULT_MODEL).parent_path().parent_path().parent_path().string();
  if (!config_path.empty()) apply_config_file(config_path, o, sources, app);
  for (const kvlab::TaskOption& t : task_options)
    if (app.count(kvlab::option_flag(t.name)))
      sources.flags[t.name] = t.kind == kvlab::TaskOption::Bool ? "true" : task_text[t.name];
  const kvlab::TaskInfo& task = kvlab::find_task(o.task);
  const json task_options_json = kvlab::resolve_task_options(task, sources);
  kvlab::CacheSpec cache = kvlab::cache_spec_from_flags(o.cache);
  const kvlab::CacheDump dump(dump_flags, cache);
  if (o.out.empty()) o.out = default_out(o);
  if (o.tokenizer.empty()) o.tokenizer = o.model + "/tokenizer.json";

  // Data and prompts are checked before the weights load; the task then sizes the memory check.
  auto backend = kvlab::make_backend(kvlab::backend_kind_from_name(o.backend));
  const json overrides = kvlab::hf_overrides_from_flag(o.hf_overrides);
  const kvlab::ModelConfig model_config = kvlab::load_model_config(o.model, overrides);
  kvlab::Tokenizer tok = kvlab::Tokenizer::load(o.tokenizer);
  if (tok.vocab_size() > model_config.vocab_size)
    kvlab::fail(o.tokenizer + ": tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model's " +
                "vocab_size is " + std::to_string(model_config.vocab_size));
  kvlab::PreparedTask prepared = task.prepare(
      task_options_json, {tok, model_config, cache, kvlab::kv_bytes_per_token(model_config, backend->kv_dtype())});
  kvlab::LoadedModel m = kvlab::load_model(o.model, *backend, prepared.context_tokens, true,
                                           kvlab::kDefaultPrefillChunk, prepared.all_logits, overrides);
  kvlab::install_interrupt_handlers();  // from here on SIGINT/SIGTERM end the run after the current sample
  kvlab::TaskResult result = prepared.run(*m.model);
  // Weights, KV store and workspace at their largest: device memory on cuda, host tensors on cpu.
  result.metrics["backend_memory_peak_bytes"] = backend->peak_allocated_bytes();

  json config = {{"task", o.task},
                 {"backend", o.backend},
                 {"tokenizer", o.tokenizer},
                 {"cache", kvlab::to_json(cache)},
                 {o.task, prepared.config}};
  if (!cache.channel_mask.empty()) kvlab::plan_leank(m.plan, kvlab::read_mask(cache.channel_mask), cache.leank);
  json report = kvlab::make_report(m, backend->description(), o.task, config, result.metrics,
                                  {tok.path(), prepared.data_files});
  if (kvlab::interrupted()) kvlab::mark_incomplete(report, kvlab::interrupt_reason());
  kvlab::write_report(o.out, report);
  dump.write(m.dir, cache);
  const json& mt = result.metrics;
  std::printf("%s\n  model %s, cache %s: KV kept at peak %s, host memory peak %s, decode %.1f tokens/s\nreport: %s\n",
              result.summary.c_str(), m.dir.c_str(),
              (cache.policy + (cache.channel_mask.empty() ? "" : " + LeanK " + cache.channel_mask)).c_str(),
              kvlab::format_bytes(mt["kv_cache"]["peak"]["kv_bytes"].get<size_t>()).c_str(),
              kvlab::format_bytes(mt["host_memory_peak_bytes"].get<size_t>()).c_str(),
              mt["decode_tokens_per_s"].get<double>(), o.out.c_str());
  if (!kvlab::interrupted()) return 0;
  std::fprintf(stderr, "kvlab-eval: %s; the report covers the samples completed before it\n",
               kvlab::interrupt_reason().c_str());
  return kvlab::kExitInterrupted;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-eval", eval_main, argc, argv); }
