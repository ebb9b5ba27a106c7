#include "report/cache_map.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_excerpt.h"
#include "report/html_page.h"
#include "report/svg_chart.h"

namespace kvlab {

namespace {

constexpr int kColumns = 48;     // position spans per map
constexpr size_t kMaxRows = 64;  // beyond this, a layer's heads are averaged into one row

using Layers = std::vector<std::vector<std::vector<int32_t>>>;  // [layer][head] -> kept positions

const nlohmann::json& field(const nlohmann::json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(where + "." + key + ": missing");
  return *it;
}

Layers read_layers(const nlohmann::json& snapshot, const std::string& where, int64_t tokens_seen) {
  const nlohmann::json& layers = field(snapshot, "layers", where);
  if (!layers.is_array() || layers.empty()) fail(where + ".layers: expected a non-empty list of layers");
  Layers out;
  for (size_t l = 0; l < layers.size(); l++) {
    const nlohmann::json& heads = layers[l];
    if (!heads.is_array() || heads.empty())
      fail(where + ".layers[" + std::to_string(l) + "]: expected a non-empty list of KV heads");
    out.emplace_back();
    for (size_t h = 0; h < heads.size(); h++) {
      const std::string at = where + ".layers[" + std::to_string(l) + "][" + std::to_string(h) + "]";
      if (!heads[h].is_array()) fail(at + ": expected a list of positions");
      std::vector<int32_t> kept;
      for (const nlohmann::json& p : heads[h]) {
        if (!p.is_number_integer() || p.get<int64_t>() < 0 || p.get<int64_t>() >= tokens_seen)
          fail(at + ": positions must be integers in [0, tokens_seen = " + std::to_string(tokens_seen) + ")");
        kept.push_back(p.get<int32_t>());
      }
      out.back().push_back(std::move(kept));
    }
  }
  return out;
}

std::string span_label(int64_t begin, int64_t end) { return std::to_string(begin) + "–" + std::to_string(end - 1); }

SvgHeatmap snapshot_map(const nlohmann::json& snapshot, const std::string& where) {
  if (!snapshot.is_object()) fail(where + ": expected an object");
  const nlohmann::json& seen = field(snapshot, "tokens_seen", where);
  if (!seen.is_number_integer() || seen.get<int64_t>() < 1) fail(where + ".tokens_seen: expected a positive integer");
  const int64_t tokens = seen.get<int64_t>();
  const Layers layers = read_layers(snapshot, where, tokens);
  const int64_t width = (tokens + kColumns - 1) / kColumns;
  const int columns = int((tokens + width - 1) / width);

  size_t pairs = 0;
  bool heads_agree = true;
  for (const auto& heads : layers) {
    pairs += heads.size();
    for (const auto& h : heads) heads_agree = heads_agree && h == heads.front();
  }
  const bool per_head = !heads_agree && pairs <= kMaxRows;

  SvgHeatmap map;
  map.title = snapshot.value("when", std::string("snapshot")) + ": " + std::to_string(tokens) + " tokens seen, " +
              snapshot.value("policy", std::string("?")) + " keeps " + std::to_string(layers[0][0].size()) +
              " in layer 0";
  map.x_label = "original position";
  map.y_label = per_head ? "layer.head" : (heads_agree ? "layer" : "layer (mean over KV heads)");
  map.cell_labels = false;
  for (int c = 0; c < columns; c++) map.columns.push_back(c % 8 == 0 ? std::to_string(c * width) : "");
  auto add_row = [&](const std::string& name, const std::vector<const std::vector<int32_t>*>& heads) {
    std::vector<double> kept(size_t(columns), 0.0);
    for (const auto* h : heads)
      for (int32_t p : *h) kept[size_t(p / width)] += 1.0 / double(heads.size());
    map.rows.push_back(name);
    map.values.emplace_back();
    map.tips.emplace_back();
    for (int c = 0; c < columns; c++) {
      const int64_t begin = c * width, end = std::min(tokens, begin + width);
      map.values.back().push_back(kept[size_t(c)] / double(end - begin));
      char tip[128];
      std::snprintf(tip, sizeof tip, "%s, positions %s: %.1f of %lld kept", name.c_str(),
                    span_label(begin, end).c_str(), kept[size_t(c)], static_cast<long long>(end - begin));
      map.tips.back().push_back(tip);
    }
  };
  for (size_t l = 0; l < layers.size(); l++) {
    if (per_head) {
      for (size_t h = 0; h < layers[l].size(); h++)
        add_row(std::to_string(l) + "." + std::to_string(h), {&layers[l][h]});
    } else {
      std::vector<const std::vector<int32_t>*> heads;
      for (const auto& h : layers[l]) heads.push_back(&h);
      add_row(std::to_string(l), heads);
    }
  }
  return map;
}

}  // namespace

std::string cache_map_html(const nlohmann::json& dump, const std::string& source) {
  if (!dump.is_object() || dump.value("schema", std::string()) != "kvlab.cache_dump")
    fail(source + ": not a kvlab cache dump (schema \"kvlab.cache_dump\"; kvlab-eval or kvlab-generate --dump-cache "
         "writes one)");
  if (dump.value("schema_version", 0) != 1)
    fail(source + ": cache dump schema_version " + json_excerpt(dump.value("schema_version", nlohmann::json())) +
         " is not 1");
  const nlohmann::json& snapshots = field(dump, "snapshots", source);
  if (!snapshots.is_array() || snapshots.empty()) fail(source + ": snapshots: expected a non-empty list");
  const std::string name = std::filesystem::path(source).filename().string();
  const nlohmann::json cache = dump.value("cache", nlohmann::json::object());
  std::string cache_text;
  if (cache.is_object())
    for (const char* key : {"policy", "budget", "params", "interval"})
      if (auto it = cache.find(key); it != cache.end())
        cache_text += std::string(cache_text.empty() ? "" : ", ") + key + " " + json_excerpt(*it);
  std::string body = "<header><h1>What the KV cache keeps</h1><p class=\"meta\"><code>" + html_escape(name) +
                     "</code> · model <code>" + html_escape(dump.value("model", std::string("?"))) +
                     "</code> · cache: " + html_escape(cache_text) +
                     "</p></header>\n<p>Each row is a layer (or a layer's KV head), each column a span of original "
                     "token positions; the shade is the share of the span the cache still holds. Hover a cell for "
                     "its numbers.</p>\n<div class=\"charts\">";
  for (size_t i = 0; i < snapshots.size(); i++)
    body += render_heatmap(snapshot_map(snapshots[i], source + ": snapshots[" + std::to_string(i) + "]"));
  return html_document("KV cache map: " + name, body + "</div>\n");
}

}  // namespace kvlab
