#pragma once
// The JSON report of one run: schema-versioned, carrying everything needed to trace a number
// back to its inputs (model hash, resolved config, environment).
#include <string>

#include <nlohmann/json.hpp>

namespace kvlab {

struct LoadedModel;
struct MemoryPlan;

constexpr int kReportSchemaVersion = 1;

nlohmann::json model_json(const LoadedModel& m);
// Assembles {schema, schema_version, environment, model, task, config, memory, metrics}.
nlohmann::json make_report(const LoadedModel& m, const std::string& backend_description, const std::string& task,
                           const nlohmann::json& config, const MemoryPlan& plan, const nlohmann::json& metrics);
// Writes `report` atomically to `path` (pretty-printed).
void write_report(const std::string& path, const nlohmann::json& report);

}  // namespace kvlab
