#include "report/csv_table.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "report/fields.h"
#include "report/summary.h"

namespace kvlab {

namespace {
void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (auto& [key, v] : j.items()) {
    const std::string name = prefix + "." + key;
    if (v.is_object())
      flatten(v, name, out);
    else
      out[name] = v.is_string() ? v.get<std::string>() : v.dump();
  }
}
}  // namespace

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string q = "\"";
  for (char c : text) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string summary_csv(const Summary& s) {
  std::vector<std::map<std::string, std::string>> config(s.rows.size());
  std::set<std::string> config_keys;
  for (size_t i = 0; i < s.rows.size(); i++) {
    flatten(s.rows[i].record->config, "config", config[i]);
    for (auto& [k, v] : config[i]) config_keys.insert(k);
  }
  std::vector<std::string> header = {"id",       "model",         "task",     "method",
                                     "policy",   "budget",        "interval", "streaming_prefill",
                                     "settings", "quality_metric"};
  for (const Field& f : report_fields()) header.push_back(f.name);
  header.insert(header.end(), {"meets_constraints", "pareto"});
  header.insert(header.end(), config_keys.begin(), config_keys.end());
  std::string out;
  auto emit = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); i++) out += (i ? "," : "") + csv_field(cells[i]);
    out += "\r\n";
  };
  emit(header);
  for (size_t i = 0; i < s.rows.size(); i++) {
    const RunRow& r = s.rows[i];
    std::vector<std::string> cells = {r.id,
                                      r.model,
                                      r.task,
                                      r.method,
                                      r.policy,
                                      r.budget,
                                      r.interval,
                                      r.streaming_prefill ? "true" : "false",
                                      s.settings[i],
                                      r.quality_metric};
    for (const Field& f : report_fields()) {
      const std::optional<double> v = r.value(f.name);
      cells.push_back(v ? nlohmann::json(*v).dump() : "");
    }
    cells.push_back(s.meets[i] ? "true" : "false");
    cells.push_back(s.on_pareto[i] ? "true" : "false");
    for (const std::string& k : config_keys) cells.push_back(config[i].count(k) ? config[i][k] : "");
    emit(cells);
  }
  return out;
}

}  // namespace kvlab
