#include "report/chart_data.h"

#include <map>
#include <tuple>

#include "report/summary.h"

namespace kvlab {

using nlohmann::json;

std::vector<SpeedSeries> decode_speed_by_context(const Summary& s) {
  std::map<std::string, std::map<double, std::pair<double, int>>> sums;  // method -> context -> (sum, n)
  std::vector<std::string> order;
  for (const RunRow& r : s.rows) {
    auto ctx = r.value("context_tokens"), tps = r.value("decode_tokens_per_s");
    if (!ctx || !tps || *tps <= 0) continue;
    if (!sums.count(r.method)) order.push_back(r.method);
    auto& cell = sums[r.method][*ctx];
    cell.first += *tps;
    cell.second++;
  }
  std::vector<SpeedSeries> out;
  for (const std::string& m : order) {
    SpeedSeries series{m, {}};
    for (auto& [ctx, sum] : sums[m]) series.points.push_back({ctx, sum.first / sum.second, sum.second});
    out.push_back(series);
  }
  return out;
}

std::vector<MemorySeries> memory_over_tokens(const Summary& s) {
  std::vector<MemorySeries> out;
  for (size_t i = 0; i < s.rows.size(); i++) {
    const json& m = s.rows[i].record->report["metrics"];
    if (!m.contains("windows") || !m["windows"].is_array()) continue;
    MemorySeries series{i, {}};
    for (const json& w : m["windows"]) {
      if (!w.contains("kv_bytes_kept") || !w.contains("first_token") || !w.contains("tokens")) continue;
      // Window [first_token, first_token + tokens) was predicted with the cache as it stood
      // after its last prediction.
      series.points.emplace_back(w["first_token"].get<double>() + w["tokens"].get<double>() - 1,
                                 w["kv_bytes_kept"].get<double>());
    }
    if (!series.points.empty()) out.push_back(series);
  }
  return out;
}

std::vector<Heatmap> depth_length_heatmaps(const Summary& s) {
  using Key = std::tuple<std::string, std::string, std::string>;                   // task, model, method
  std::map<Key, std::map<std::pair<int, double>, std::pair<double, int>>> groups;  // -> (length, depth) -> (sum, n)
  std::vector<Key> order;
  auto add = [&](const Key& k, int length, double depth, double accuracy, int samples) {
    if (!groups.count(k)) order.push_back(k);
    auto& cell = groups[k][{length, depth}];
    cell.first += accuracy * samples;
    cell.second += samples;
  };
  for (const RunRow& r : s.rows) {
    const json& rep = r.record->report;
    const json& m = rep["metrics"];
    const Key k{r.task, r.model, r.method};
    if (m.contains("cells") && m["cells"].is_array()) {
      for (const json& c : m["cells"])
        if (c.contains("length") && c.contains("depth") && c.contains("accuracy"))
          add(k, c["length"].get<int>(), c["depth"].get<double>(), c["accuracy"].get<double>(), c.value("samples", 1));
    } else if (m.contains("by_depth") && m["by_depth"].is_array() && rep["config"].contains(r.task) &&
               rep["config"][r.task].contains("context_tokens")) {
      const int length = rep["config"][r.task]["context_tokens"].get<int>();
      for (const json& c : m["by_depth"])
        if (c.contains("depth") && c.contains("accuracy"))
          add(k, length, c["depth"].get<double>(), c["accuracy"].get<double>(), c.value("samples", 1));
    }
  }
  std::vector<Heatmap> out;
  for (const Key& k : order) {
    Heatmap h{std::get<0>(k), std::get<1>(k), std::get<2>(k), {}};
    for (auto& [cell, sum] : groups[k])
      h.cells.push_back({cell.first, cell.second, sum.second ? sum.first / sum.second : 0.0, sum.second});
    out.push_back(h);
  }
  return out;
}

nlohmann::json charts_json(const Summary& s) {
  json speed = json::array();
  for (const SpeedSeries& series : decode_speed_by_context(s)) {
    json points = json::array();
    for (const SpeedPoint& p : series.points)
      points.push_back(
          {{"context_tokens", p.context_tokens}, {"decode_tokens_per_s", p.decode_tokens_per_s}, {"runs", p.runs}});
    speed.push_back({{"method", series.method}, {"points", points}});
  }
  json memory = json::array();
  for (const MemorySeries& series : memory_over_tokens(s)) {
    json points = json::array();
    for (auto& [tokens, bytes] : series.points) points.push_back({{"tokens", tokens}, {"kv_bytes", bytes}});
    memory.push_back({{"id", s.rows[series.row].id}, {"name", run_name(s, series.row)}, {"points", points}});
  }
  json heat = json::array();
  for (const Heatmap& h : depth_length_heatmaps(s)) {
    json cells = json::array();
    for (const HeatCell& c : h.cells)
      cells.push_back({{"length", c.length}, {"depth", c.depth}, {"accuracy", c.accuracy}, {"samples", c.samples}});
    heat.push_back({{"task", h.task}, {"model", h.model}, {"method", h.method}, {"cells", cells}});
  }
  return {{"decode_speed_vs_context", speed}, {"memory_over_tokens", memory}, {"depth_length_accuracy", heat}};
}

}  // namespace kvlab
