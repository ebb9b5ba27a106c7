#pragma once
// The series kvlab-report draws, taken from the runs' reports: decode speed against context
// length per method, KV memory over the tokens of continuous generation (the perplexity task's
// per-window KV bytes), and accuracy by needle depth x length (niah cells; passkey depths at
// each context).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kvlab {

struct Summary;

struct SpeedPoint {
  double context_tokens = 0;
  double decode_tokens_per_s = 0;  // mean over the runs at this context
  int runs = 0;
};
struct SpeedSeries {
  std::string method;
  std::vector<SpeedPoint> points;  // by context
};
std::vector<SpeedSeries> decode_speed_by_context(const Summary& s);

struct MemorySeries {
  size_t row = 0;
  std::vector<std::pair<double, double>> points;  // (tokens fed, K+V bytes kept)
};
std::vector<MemorySeries> memory_over_tokens(const Summary& s);

struct HeatCell {
  int length = 0;
  double depth = 0;
  double accuracy = 0;
  int samples = 0;
};
struct Heatmap {
  std::string task, model, method;
  std::vector<HeatCell> cells;  // by length, then depth
};
std::vector<Heatmap> depth_length_heatmaps(const Summary& s);

nlohmann::json charts_json(const Summary& s);

}  // namespace kvlab
