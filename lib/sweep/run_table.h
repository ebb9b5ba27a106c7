#pragma once
// The dry-run listing: every run of a sweep (or shard) with its key settings, status and the
// memory it is predicted to need, as an aligned text table or JSON.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sweep/run_plan.h"

namespace kvlab {

std::string format_run_table(const Sweep& sweep, const std::vector<PlannedRun>& runs);
// [{"id", "status", "config", "memory": to_json(plan), "fits"}, ...]
nlohmann::json run_table_json(const std::vector<PlannedRun>& runs);

}  // namespace kvlab
