#pragma once
// The JSON report of one run: schema-versioned, carrying everything needed to trace a number
// back to its inputs (model hash, resolved config, environment).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvlab {

struct LoadedModel;
struct MemoryPlan;

constexpr int kReportSchemaVersion = 1;

// The files a run read besides the model directory (whose hash LoadedModel carries).
struct RunInputs {
  std::string tokenizer;              // the tokenizer.json loaded; "" when none
  std::vector<std::string> datasets;  // every data file a task read, as the run named it
};

// {"model_sha256", "tokenizer_sha256", "config_sha256", "datasets": {path: sha256}}. The config
// hash is over `config` serialized compactly with sorted keys, so equal settings hash equally.
// A hash that was not computed (no tokenizer, model loaded without hashing) is null.
nlohmann::json input_hashes(const std::string& model_sha256, const RunInputs& files, const nlohmann::json& config);

nlohmann::json model_json(const LoadedModel& m);
// Assembles {schema, schema_version, complete: true, environment, model, inputs, task, config,
// memory (m.plan), metrics}.
nlohmann::json make_report(const LoadedModel& m, const std::string& backend_description, const std::string& task,
                           const nlohmann::json& config, const nlohmann::json& metrics, const RunInputs& inputs = {});
// Marks a report whose metrics cover only part of the planned work: "complete": false and
// "incomplete_reason" (e.g. "interrupted by SIGINT").
void mark_incomplete(nlohmann::json& report, const std::string& reason);
// Writes `report` atomically to `path` (pretty-printed).
void write_report(const std::string& path, const nlohmann::json& report);

}  // namespace kvlab
