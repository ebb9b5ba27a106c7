#pragma once
// Charts as inline SVG, drawn in C++ so the report page needs no script and no network: an x-y
// chart (points, lines, steps; a legend; a tooltip per point) and a heat-map. Sizes and fonts are
// fixed; colours come from one palette, so a method keeps its colour across charts when callers
// pass the same colour index.
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvlab {

std::string html_escape(const std::string& text);
// The palette's colour `i` (cycling).
std::string palette_color(size_t i);

// An axis in a unit: values are divided by `scale` and printed with `suffix` in the label, so a
// byte axis reads "KV cache at peak (KiB)" with ticks 0, 16, 32.
struct SvgAxis {
  std::string label;
  double scale = 1;
  std::string unit;  // "" for none
  bool log = false;  // base-10 (all values must be > 0)
};
// A byte axis in the binary unit that suits `max_bytes`.
SvgAxis byte_axis(const std::string& label, double max_bytes);

struct SvgPoint {
  double x = 0, y = 0;
  std::string tip;    // tooltip text
  bool ring = false;  // circled (e.g. on the Pareto front)
};

struct SvgSeries {
  std::string name;  // legend entry; "" for none
  std::string color;
  std::vector<SvgPoint> points;
  bool markers = true;
  bool line = false;  // join the points in order
  bool step = false;  // with line: horizontal then vertical, as a Pareto front is drawn
  bool dashed = false;
};

struct SvgXyChart {
  std::string title;
  SvgAxis x, y;
  bool x_from_zero = false;
  bool y_from_zero = true;
  std::optional<std::pair<double, double>> y_range;  // fixed (in axis units), e.g. [0, 1] for accuracy
  std::vector<SvgSeries> series;
  int width = 640, height = 360;
};
std::string render_xy_chart(const SvgXyChart& c);

struct SvgHeatmap {
  std::string title;
  std::string x_label, y_label;
  std::vector<std::string> columns, rows;                  // x and y tick labels
  std::vector<std::vector<std::optional<double>>> values;  // [row][column], in [0, 1]
  std::vector<std::vector<std::string>> tips;              // [row][column]
  bool cell_labels = true;                                 // print each value in its cell
};
std::string render_heatmap(const SvgHeatmap& h);

}  // namespace kvlab
