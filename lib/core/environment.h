#pragma once
// Where and with what a result was produced: recorded in every report.
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

std::string cpu_model();           // from /proc/cpuinfo
std::string utc_timestamp();       // ISO 8601, e.g. 2026-11-24T06:01:02Z
nlohmann::json environment_json(const std::string& backend_description);

}  // namespace kvlab
