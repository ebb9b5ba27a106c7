#include "report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kvlab {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// 1, 2 or 5 times a power of ten, about `target` steps over [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  if (!(hi > lo)) hi = lo + (lo == 0 ? 1 : std::abs(lo) * 0.1);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double v = first; v <= hi + step * 0.999; v += step) ticks.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  if (ticks.size() < 2) ticks.push_back(first + step);
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  for (double e = std::floor(std::log10(lo)); e <= std::ceil(std::log10(hi)); e++) ticks.push_back(std::pow(10, e));
  if (ticks.size() < 2) ticks.push_back(ticks.back() * 10);
  return ticks;
}

std::string tick_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, std::abs(v) >= 1000 && v == std::floor(v) && std::abs(v) < 1e9 ? "%.0f" : "%.4g", v);
  return buf;
}

std::string axis_title(const SvgAxis& a) { return a.unit.empty() ? a.label : a.label + " (" + a.unit + ")"; }

// Red (0) through yellow (0.5) to green (1).
std::string ramp(double t) {
  t = std::clamp(t, 0.0, 1.0);
  const double stops[3][3] = {{215, 48, 39}, {254, 224, 139}, {26, 152, 80}};
  const int i = t < 0.5 ? 0 : 1;
  const double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(stops[i][0] + (stops[i + 1][0] - stops[i][0]) * u),
                int(stops[i][1] + (stops[i + 1][1] - stops[i][1]) * u),
                int(stops[i][2] + (stops[i + 1][2] - stops[i][2]) * u));
  return buf;
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string palette_color(size_t i) {
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                  "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
  return kColors[i % std::size(kColors)];
}

SvgAxis byte_axis(const std::string& label, double max_bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double scale = 1;
  while (max_bytes / scale >= 1024 && u < 4) {
    scale *= 1024;
    u++;
  }
  return {label, scale, kUnits[u], false};
}

std::string render_xy_chart(const SvgXyChart& c) {
  bool legend = false;
  double x_lo = 1e300, x_hi = -1e300, y_lo = 1e300, y_hi = -1e300;
  for (const SvgSeries& s : c.series) {
    legend |= !s.name.empty();
    for (const SvgPoint& p : s.points) {
      x_lo = std::min(x_lo, p.x / c.x.scale), x_hi = std::max(x_hi, p.x / c.x.scale);
      y_lo = std::min(y_lo, p.y / c.y.scale), y_hi = std::max(y_hi, p.y / c.y.scale);
    }
  }
  if (x_lo > x_hi) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  if (c.x_from_zero && !c.x.log) x_lo = std::min(x_lo, 0.0);
  if (c.y_from_zero && !c.y.log) y_lo = std::min(y_lo, 0.0);
  if (c.y_range) y_lo = std::min(y_lo, c.y_range->first), y_hi = std::max(y_hi, c.y_range->second);
  const std::vector<double> xt = c.x.log ? log_ticks(x_lo, x_hi) : nice_ticks(x_lo, x_hi);
  const std::vector<double> yt = c.y.log ? log_ticks(y_lo, y_hi) : nice_ticks(y_lo, y_hi);
  const double left = 72, top = 34, bottom = 52, right = legend ? 210 : 24;
  const double pw = c.width - left - right, ph = c.height - top - bottom;
  auto pos = [](double v, const std::vector<double>& t, bool log) {
    const double a = log ? std::log10(t.front()) : t.front(), b = log ? std::log10(t.back()) : t.back();
    return ((log ? std::log10(v) : v) - a) / (b - a);
  };
  auto px = [&](double v) { return left + pos(v / c.x.scale, xt, c.x.log) * pw; };
  auto py = [&](double v) { return top + ph - pos(v / c.y.scale, yt, c.y.log) * ph; };

  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" viewBox=\"0 0 " +
                  std::to_string(c.width) + " " + std::to_string(c.height) + "\" width=\"" + std::to_string(c.width) +
                  "\" height=\"" + std::to_string(c.height) + "\"><title>" + html_escape(c.title) + "</title>";
  s += "<text x=\"" + num(left) + "\" y=\"20\" class=\"chart-title\">" + html_escape(c.title) + "</text>";
  s += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
       "\" fill=\"#fff\" stroke=\"#999\"/>";
  for (double t : xt) {
    const double x = left + pos(t, xt, c.x.log) * pw;
    s += "<line x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x) + "\" y2=\"" + num(top + ph) +
         "\" stroke=\"#eee\"/><text x=\"" + num(x) + "\" y=\"" + num(top + ph + 16) +
         "\" text-anchor=\"middle\" class=\"tick\">" + tick_text(t) + "</text>";
  }
  for (double t : yt) {
    const double y = top + ph - pos(t, yt, c.y.log) * ph;
    s += "<line x1=\"" + num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(left + pw) + "\" y2=\"" + num(y) +
         "\" stroke=\"#eee\"/><text x=\"" + num(left - 6) + "\" y=\"" + num(y + 4) +
         "\" text-anchor=\"end\" class=\"tick\">" + tick_text(t) + "</text>";
  }
  s += "<text x=\"" + num(left + pw / 2) + "\" y=\"" + num(c.height - 12.0) +
       "\" text-anchor=\"middle\" class=\"axis\">" + html_escape(axis_title(c.x)) + "</text>";
  s += "<text transform=\"translate(16 " + num(top + ph / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" class=\"axis\">" + html_escape(axis_title(c.y)) + "</text>";
  for (const SvgSeries& series : c.series) {
    if (series.line && series.points.size() > 1) {
      std::string d = "M" + num(px(series.points[0].x)) + " " + num(py(series.points[0].y));
      for (size_t i = 1; i < series.points.size(); i++) {
        if (series.step) d += " H" + num(px(series.points[i].x));
        d += (series.step ? " V" : " L" + num(px(series.points[i].x)) + " ") + num(py(series.points[i].y));
      }
      s += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + series.color + "\" stroke-width=\"2\"" +
           (series.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>";
    }
    for (const SvgPoint& p : series.points) {
      if (p.ring)
        s += "<circle cx=\"" + num(px(p.x)) + "\" cy=\"" + num(py(p.y)) +
             "\" r=\"9\" fill=\"none\" stroke=\"#111\" "
             "stroke-width=\"1.5\"/>";
      if (series.markers)
        s += "<circle cx=\"" + num(px(p.x)) + "\" cy=\"" + num(py(p.y)) + "\" r=\"5\" fill=\"" + series.color +
             "\" fill-opacity=\"0.85\"><title>" + html_escape(p.tip) + "</title></circle>";
    }
  }
  if (legend) {
    double y = top + 8;
    for (const SvgSeries& series : c.series) {
      if (series.name.empty()) continue;
      const double x = left + pw + 16;
      if (series.markers)
        s += "<circle cx=\"" + num(x + 6) + "\" cy=\"" + num(y) + "\" r=\"5\" fill=\"" + series.color + "\"/>";
      else
        s += "<line x1=\"" + num(x) + "\" y1=\"" + num(y) + "\" x2=\"" + num(x + 14) + "\" y2=\"" + num(y) +
             "\" stroke=\"" + series.color + "\" stroke-width=\"2\"" +
             (series.dashed ? " stroke-dasharray=\"4 3\"" : "") + "/>";
      std::string name = series.name.size() > 27 ? series.name.substr(0, 26) + "…" : series.name;
      s += "<text x=\"" + num(x + 20) + "\" y=\"" + num(y + 4) + "\" class=\"legend\">" + html_escape(name) +
           "<title>" + html_escape(series.name) + "</title></text>";
      y += 18;
      if (y > c.height - 10) break;
    }
  }
  return s + "</svg>";
}

std::string render_heatmap(const SvgHeatmap& h) {
  const double left = 90, top = 40, cw = std::min(72.0, 560.0 / std::max<size_t>(1, h.columns.size()));
  const double ch = std::min(34.0, 320.0 / std::max<size_t>(1, h.rows.size()));
  const double width = left + cw * double(h.columns.size()) + 150, height = top + ch * double(h.rows.size()) + 56;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart heatmap\" role=\"img\" viewBox=\"0 0 " +
                  num(width) + " " + num(height) + "\" width=\"" + num(width) + "\" height=\"" + num(height) +
                  "\"><title>" + html_escape(h.title) + "</title>";
  s += "<text x=\"8\" y=\"20\" class=\"chart-title\">" + html_escape(h.title) + "</text>";
  for (size_t r = 0; r < h.rows.size(); r++) {
    const double y = top + ch * double(r);
    s += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y + ch / 2 + 4) + "\" text-anchor=\"end\" class=\"tick\">" +
         html_escape(h.rows[r]) + "</text>";
    for (size_t col = 0; col < h.columns.size(); col++) {
      const double x = left + cw * double(col);
      const std::optional<double>& v = h.values[r][col];
      s += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cw - 1) + "\" height=\"" + num(ch - 1) +
           "\" fill=\"" + (v ? ramp(*v) : std::string("#f3f3f3")) + "\"><title>" + html_escape(h.tips[r][col]) +
           "</title></rect>";
      if (v && h.cell_labels) {
        char text[16];
        std::snprintf(text, sizeof text, "%.2f", *v);
        s += "<text x=\"" + num(x + cw / 2) + "\" y=\"" + num(y + ch / 2 + 4) +
             "\" text-anchor=\"middle\" class=\"cell\">" + text + "</text>";
      }
    }
  }
  for (size_t col = 0; col < h.columns.size(); col++)
    s += "<text x=\"" + num(left + cw * (double(col) + 0.5)) + "\" y=\"" + num(top + ch * double(h.rows.size()) + 16) +
         "\" text-anchor=\"middle\" class=\"tick\">" + html_escape(h.columns[col]) + "</text>";
  s += "<text x=\"" + num(left + cw * double(h.columns.size()) / 2) + "\" y=\"" + num(height - 10) +
       "\" text-anchor=\"middle\" class=\"axis\">" + html_escape(h.x_label) + "</text>";
  s += "<text transform=\"translate(14 " + num(top + ch * double(h.rows.size()) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" class=\"axis\">" + html_escape(h.y_label) + "</text>";
  // A five-step key of the colour ramp.
  const double kx = left + cw * double(h.columns.size()) + 24;
  for (int i = 0; i <= 4; i++) {
    const double y = top + 18.0 * i;
    s += "<rect x=\"" + num(kx) + "\" y=\"" + num(y) + "\" width=\"16\" height=\"16\" fill=\"" + ramp(1 - i / 4.0) +
         "\"/><text x=\"" + num(kx + 22) + "\" y=\"" + num(y + 12) + "\" class=\"legend\">" + tick_text(1 - i / 4.0) +
         "</text>";
  }
  return s + "</svg>";
}

}  // namespace kvlab
