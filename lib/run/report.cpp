#include "run/report.h"

#include "core/atomic_file.h"
#include "core/environment.h"
#include "core/sha256.h"
#include "model/loaded_model.h"
#include "model/memory_plan.h"

namespace kvlab {

nlohmann::json input_hashes(const std::string& model_sha256, const RunInputs& files, const nlohmann::json& config) {
  using nlohmann::json;
  auto file_hash = [](const std::string& path) { return path.empty() ? json() : json(sha256_file(path)); };
  json datasets = json::object();
  for (const std::string& path : files.datasets) datasets[path] = file_hash(path);
  // nlohmann's objects keep their keys sorted, so dump() is canonical.
  return {{"model_sha256", model_sha256.empty() ? json() : json(model_sha256)},
          {"tokenizer_sha256", file_hash(files.tokenizer)},
          {"config_sha256", sha256_hex(config.dump())},
          {"datasets", datasets}};
}

nlohmann::json model_json(const LoadedModel& m) {
  const ModelConfig& c = m.config;
  nlohmann::json j = {{"dir", m.dir},
                      {"architecture", architecture_name(c.arch)},
                      {"sha256", m.sha256},
                      {"parameters", parameter_count(c)},
                      {"layers", c.num_layers},
                      {"hidden_size", c.hidden_size},
                      {"attention_heads", c.num_heads},
                      {"kv_heads", c.num_kv_heads},
                      {"head_dim", c.head_dim},
                      {"vocab_size", c.vocab_size},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"context_window", c.context_window()},
                      {"rope_scaling", c.rope_scaling.type}};
  // sha256 covers the files as they are; what was merged into config.json stands beside it.
  if (!m.hf_overrides.is_null()) j["hf_overrides"] = m.hf_overrides;
  return j;
}

nlohmann::json make_report(const LoadedModel& m, const std::string& backend_description, const std::string& task,
                           const nlohmann::json& config, const nlohmann::json& metrics,
                           const RunInputs& inputs) {
  return {{"schema", "kvlab.report"},
          {"schema_version", kReportSchemaVersion},
          {"complete", true},
          {"environment", environment_json(backend_description)},
          {"model", model_json(m)},
          {"inputs", input_hashes(m.sha256, inputs, config)},
          {"task", task},
          {"config", config},
          {"memory", to_json(m.plan)},
          {"metrics", metrics}};
}

void mark_incomplete(nlohmann::json& report, const std::string& reason) {
  report["complete"] = false;
  report["incomplete_reason"] = reason;
}

void write_report(const std::string& path, const nlohmann::json& report) {
  write_file_atomically(path, report.dump(2) + "\n");
}

}  // namespace kvlab
