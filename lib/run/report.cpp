#include "run/report.h"

#include "core/atomic_file.h"
#include "core/environment.h"
#include "model/loaded_model.h"
#include "model/memory_plan.h"

namespace kvlab {

nlohmann::json model_json(const LoadedModel& m) {
  const ModelConfig& c = m.config;
  return {{"dir", m.dir},
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
          {"rope_scaling", c.rope_scaling.type}};
}

nlohmann::json make_report(const LoadedModel& m, const std::string& backend_description, const std::string& task,
                           const nlohmann::json& config, const MemoryPlan& plan, const nlohmann::json& metrics) {
  return {{"schema", "kvlab.report"},
          {"schema_version", kReportSchemaVersion},
          {"environment", environment_json(backend_description)},
          {"model", model_json(m)},
          {"task", task},
          {"config", config},
          {"memory", to_json(plan)},
          {"metrics", metrics}};
}

void write_report(const std::string& path, const nlohmann::json& report) {
  write_file_atomically(path, report.dump(2) + "\n");
}

}  // namespace kvlab
