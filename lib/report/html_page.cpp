#include "report/html_page.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "core/environment.h"
#include "model/memory_plan.h"
#include "report/chart_data.h"
#include "report/fields.h"
#include "report/summary.h"
#include "report/svg_chart.h"

namespace kvlab {

namespace {

const char* kStyle = R"(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto;
       max-width: 1320px; padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.meta { color: #666; margin: 0; }
.verdict { background: #f4f8ff; border: 1px solid #c9dafc; border-radius: 6px; padding: 10px 16px; }
.verdict li { margin: 6px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg.chart { font: 12px system-ui, sans-serif; background: #fafafa; border: 1px solid #e3e3e3; border-radius: 4px; }
svg .chart-title { font-weight: 600; font-size: 13px; }
svg .tick { fill: #555; font-size: 11px; }
svg .axis { fill: #333; font-size: 12px; }
svg .legend { fill: #333; font-size: 11px; }
svg .cell { fill: #111; font-size: 11px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; white-space: nowrap; }
.table-wrap { overflow-x: auto; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.miss td { color: #999; }
code { font-size: 12px; }
)";

std::string tick_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string td(const std::string& text, bool numeric = false) {
  return std::string(numeric ? "<td class=\"num\">" : "<td>") + html_escape(text) + "</td>";
}

std::string quality_title(const RunRow& r) { return r.quality_metric == "ppl" ? "perplexity" : r.quality_metric; }

std::string point_tip(const Summary& s, size_t i) {
  const RunRow& r = s.rows[i];
  return r.id + " " + run_name(s, i) + ": " + quality_title(r) + " " + formatted(r, "quality") + ", KV at peak " +
         formatted(r, "kv_bytes") + ", decode " + formatted(r, "decode_tokens_per_s") + " tok/s";
}

std::string pareto_charts(const Summary& s, const std::map<std::string, size_t>& color) {
  std::string html;
  for (const TaskVerdict& t : s.tasks) {
    SvgXyChart c;
    c.title = t.task + ": " + quality_title(s.rows[t.rows[0]]) + " against KV memory at peak";
    double max_x = 0;
    std::map<std::string, SvgSeries> by_method;
    std::vector<std::string> order;
    for (size_t i : t.rows) {
      const RunRow& r = s.rows[i];
      if (!r.value("kv_bytes") || !r.value("quality")) continue;
      max_x = std::max(max_x, *r.value("kv_bytes"));
      if (!by_method.count(r.method)) {
        order.push_back(r.method);
        by_method[r.method] = {r.method, palette_color(color.at(r.method)), {}, true, false, false, false};
      }
      by_method[r.method].points.push_back(
          {*r.value("kv_bytes"), *r.value("quality"), point_tip(s, i), bool(s.on_pareto[i])});
    }
    if (order.empty()) continue;
    c.x = byte_axis("KV cache at peak", max_x);
    c.x_from_zero = true;
    c.y = {quality_title(s.rows[t.rows[0]]), 1, "", false};
    // Accuracy and scores live in [0, 1]; perplexity is read against its own range.
    if (s.rows[t.rows[0]].quality_higher_is_better)
      c.y_range = std::make_pair(0.0, 1.0);
    else
      c.y_from_zero = false;
    for (const std::string& m : order) c.series.push_back(by_method[m]);
    SvgSeries front{"Pareto front (circled)", "#111", {}, false, true, true, true};
    for (size_t i : t.pareto)
      front.points.push_back({*s.rows[i].value("kv_bytes"), *s.rows[i].value("quality"), "", false});
    c.series.push_back(front);
    html += render_xy_chart(c);
  }
  return html;
}

std::string speed_chart(const Summary& s, const std::map<std::string, size_t>& color) {
  const std::vector<SpeedSeries> data = decode_speed_by_context(s);
  if (data.empty()) return "";
  SvgXyChart c;
  c.title = "Decode speed against context length (mean over runs at each length)";
  c.x = {"context", 1, "tokens", false};
  c.x_from_zero = true;
  c.y = {"decode speed", 1, "tokens/s", false};
  for (const SpeedSeries& d : data) {
    SvgSeries series{d.method, palette_color(color.at(d.method)), {}, true, true, false, false};
    for (const SpeedPoint& p : d.points) {
      char tip[256];
      std::snprintf(tip, sizeof tip, "%s: %.1f tokens/s at %.0f tokens (%d runs)", d.method.c_str(),
                    p.decode_tokens_per_s, p.context_tokens, p.runs);
      series.points.push_back({p.context_tokens, p.decode_tokens_per_s, tip, false});
    }
    c.series.push_back(series);
  }
  return render_xy_chart(c);
}

std::string memory_chart(const Summary& s, const std::map<std::string, size_t>& color) {
  const std::vector<MemorySeries> data = memory_over_tokens(s);
  if (data.empty()) return "";
  SvgXyChart c;
  c.title = "KV cache kept while generating (perplexity: one token at a time)";
  double max_y = 0;
  for (const MemorySeries& m : data)
    for (auto& [x, y] : m.points) max_y = std::max(max_y, y);
  c.x = {"tokens fed", 1, "", false};
  c.x_from_zero = true;
  c.y = byte_axis("K+V kept", max_y);
  for (const MemorySeries& m : data) {
    const RunRow& r = s.rows[m.row];
    SvgSeries series{run_name(s, m.row), palette_color(color.at(r.method)), {}, true, true, false, false};
    for (auto& [x, y] : m.points)
      series.points.push_back({x, y, r.id + " after " + tick_value(x) + " tokens: " + format_bytes(size_t(y)), false});
    c.series.push_back(series);
  }
  return render_xy_chart(c);
}

std::string heatmaps(const Summary& s) {
  std::string html;
  for (const Heatmap& h : depth_length_heatmaps(s)) {
    std::set<int> lengths;
    std::set<double> depths;
    for (const HeatCell& c : h.cells) lengths.insert(c.length), depths.insert(c.depth);
    SvgHeatmap m;
    m.title = h.task + " · " + h.method + " · " + h.model;
    m.x_label = "needle depth";
    m.y_label = "length (tokens)";
    for (double d : depths) m.columns.push_back(tick_value(d));
    for (int l : lengths) m.rows.push_back(std::to_string(l));
    m.values.assign(lengths.size(), std::vector<std::optional<double>>(depths.size()));
    m.tips.assign(lengths.size(), std::vector<std::string>(depths.size(), "no samples"));
    for (const HeatCell& c : h.cells) {
      const size_t r = size_t(std::distance(lengths.begin(), lengths.find(c.length)));
      const size_t col = size_t(std::distance(depths.begin(), depths.find(c.depth)));
      m.values[r][col] = c.accuracy;
      char tip[128];
      std::snprintf(tip, sizeof tip, "length %d, depth %g: accuracy %.3f over %d samples", c.length, c.depth,
                    c.accuracy, c.samples);
      m.tips[r][col] = tip;
    }
    html += render_heatmap(m);
  }
  return html;
}

std::string run_tables(const Summary& s) {
  std::string html;
  for (const TaskVerdict& t : s.tasks) {
    const RunRow& first = s.rows[t.rows[0]];
    html += "<h3>" + html_escape(t.task) + "</h3><div class=\"table-wrap\"><table class=\"runs\" data-task=\"" +
            html_escape(t.task) +
            "\"><thead><tr><th>run</th><th>model</th><th>method</th><th>settings</th><th>context</th><th>" +
            html_escape(quality_title(first)) +
            "</th><th>KV at peak</th><th>KV allocated</th><th>planned memory</th><th>decode tok/s</th><th>TTFT</th>"
            "<th>samples</th><th>meets</th><th>Pareto</th></tr></thead><tbody>";
    std::vector<size_t> order = t.ranked;
    for (size_t i : t.rows)
      if (std::find(order.begin(), order.end(), i) == order.end()) order.push_back(i);
    for (size_t i : order) {
      const RunRow& r = s.rows[i];
      html += std::string("<tr data-id=\"") + r.id + "\"" + (s.meets[i] ? "" : " class=\"miss\"") + ">" + "<td><code>" +
              r.id + "</code></td>" + td(r.model) + td(r.method) + td(s.settings[i].empty() ? "-" : s.settings[i]) +
              td(formatted(r, "context_tokens"), true) + td(formatted(r, "quality"), true) +
              td(formatted(r, "kv_bytes"), true) + td(formatted(r, "kv_allocated_bytes"), true) +
              td(formatted(r, "memory_bytes"), true) + td(formatted(r, "decode_tokens_per_s"), true) +
              td(formatted(r, "ttft_s"), true) + td(formatted(r, "samples"), true) + td(s.meets[i] ? "yes" : "no") +
              td(s.on_pareto[i] ? "★" : "") + "</tr>";
    }
    html += "</tbody></table></div>";
  }
  return html;
}

}  // namespace

std::string summary_html(const Summary& s) {
  std::map<std::string, size_t> color;  // method -> palette index, the same in every chart
  for (const RunRow& r : s.rows) color.emplace(r.method, color.size());
  std::string constraints;
  for (const Constraint& c : s.options.constraints) constraints += (constraints.empty() ? "" : " and ") + c.describe();
  std::string sources;
  for (const ResultsSource& src : s.sources)
    sources += (sources.empty() ? "" : ", ") + std::string("<code>") +
               html_escape(std::filesystem::path(src.path).filename().string()) + "</code>";

  std::string html = "<header><h1>" + html_escape(s.options.title) + "</h1><p class=\"meta\">" + std::to_string(s.rows.size()) +
          " runs from " + sources + " · objective: " + html_escape(s.options.objective) +
          " · constraint: " + html_escape(constraints.empty() ? "none" : constraints) + " · generated " +
          utc_timestamp() + " by kvlab-report " + KVLAB_VERSION + "</p></header>\n";
  html += "<section id=\"verdict\"><h2>Verdict</h2><ul class=\"verdict\">";
  for (const TaskVerdict& t : s.tasks) html += "<li>" + html_escape(t.verdict) + "</li>";
  html += "</ul></section>\n";
  html +=
      "<section id=\"pareto\"><h2>Quality against KV memory</h2><p>Each point is a run; circled points are on "
      "the Pareto front (no other run keeps less KV cache at peak and scores at least as well). Hover a point "
      "for its numbers.</p><div class=\"charts\">" +
      pareto_charts(s, color) + "</div></section>\n";
  if (std::string c = speed_chart(s, color); !c.empty())
    html += "<section id=\"speed\"><h2>Decode speed against context length</h2><div class=\"charts\">" + c +
            "</div></section>\n";
  if (std::string c = memory_chart(s, color); !c.empty())
    html += "<section id=\"memory\"><h2>KV memory over generated tokens</h2><div class=\"charts\">" + c +
            "</div></section>\n";
  if (std::string c = heatmaps(s); !c.empty())
    html += "<section id=\"heatmaps\"><h2>Accuracy by needle depth and length</h2><div class=\"charts\">" + c +
            "</div></section>\n";
  html += "<section id=\"runs\"><h2>All runs</h2>" + run_tables(s) + "</section>\n";
  return html_document(s.options.title, html);
}

std::string html_document(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
         "</title><style>" + kStyle + "</style></head><body>\n" + body + "</body></html>\n";
}

}  // namespace kvlab
