#include "sweep/run_table.h"

#include <algorithm>
#include <filesystem>

namespace kvlab {

namespace {

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Done:
      return "done";
    case RunStatus::FailedEarlier:
      return "failed";
    case RunStatus::ToRun:
      break;
  }
  return "to run";
}

std::string text_of(const nlohmann::json* v) {
  if (!v) return "-";
  return v->is_string() ? v->get<std::string>() : v->dump();
}

// The run's settings that have no column of their own.
std::string other_parameters(const Sweep& sweep, const SweepRun& run) {
  std::string s;
  for (auto& [name, text] : run_settings(sweep, run))
    if (name != "budget" && name != "model") s += (s.empty() ? "" : " ") + name + "=" + text;
  return s.empty() ? "-" : s;
}

}  // namespace

std::string format_run_table(const Sweep& sweep, const std::vector<PlannedRun>& runs) {
  std::vector<std::vector<std::string>> rows = {
      {"#", "id", "status", "model", "task", "cache", "budget", "parameters", "context", "KV cache", "total", "fits"}};
  for (const PlannedRun& p : runs) {
    const nlohmann::json& c = p.run->config;
    rows.push_back({std::to_string(p.run->index + 1), p.run->id, status_name(p.status),
                    std::filesystem::path(c["model"].get<std::string>()).filename().string(),
                    c["task"].get<std::string>(), c["cache"].get<std::string>(), text_of(find_dotted(c, "budget")),
                    other_parameters(sweep, *p.run), std::to_string(p.plan.context), format_bytes(p.plan.kv_bytes),
                    format_bytes(p.plan.total()), p.fits ? "yes" : "NO"});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); i++) width[i] = std::max(width[i], row[i].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); i++) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

nlohmann::json run_table_json(const std::vector<PlannedRun>& runs) {
  nlohmann::json out = nlohmann::json::array();
  for (const PlannedRun& p : runs)
    out.push_back({{"index", p.run->index},
                   {"id", p.run->id},
                   {"status", status_name(p.status)},
                   {"config", p.run->config},
                   {"memory", to_json(p.plan)},
                   {"fits", p.fits}});
  return out;
}

}  // namespace kvlab
