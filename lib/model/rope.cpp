#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace kvlab {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  auto pos_freq = [&](int i) { return std::pow(float(c.rope_theta), float(2 * i) / float(c.head_dim)); };
  std::vector<float> inv(size_t(half), 0.0f);
  for (int i = 0; i < half; i++) inv[size_t(i)] = 1.0f / pos_freq(i);
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    for (float& f : inv) f = f / float(s.factor);
  } else if (s.type == "llama3") {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
    const float factor = float(s.factor), low = float(s.low_freq_factor), high = float(s.high_freq_factor);
    const float old_len = float(s.original_max_position);
    const float low_freq_wavelen = old_len / low, high_freq_wavelen = old_len / high;
    for (float& f : inv) {
      const float wavelen = 2.0f * float(M_PI) / f;
      float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
        float smooth = (old_len / wavelen - low) / (high - low);
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  } else if (s.type == "yarn") {
    // Dimensions that turn more than beta_fast times over the original length keep their
    // frequency, those under beta_slow turns are slowed by `factor`, the band between blends
    // linearly (HF's _compute_yarn_parameters, in its fp32 steps).
    const double dim = c.head_dim, log_base = 2.0 * std::log(c.rope_theta);
    auto band_edge = [&](double rotations) {
      return dim * std::log(double(s.original_max_position) / (rotations * 2.0 * M_PI)) / log_base;
    };
    double low = band_edge(s.beta_fast), high = band_edge(s.beta_slow);
    if (s.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, dim - 1);
    if (low == high) high += 0.001;
    for (int i = 0; i < half; i++) {
      const float extrapolated = inv[size_t(i)], interpolated = 1.0f / (float(s.factor) * pos_freq(i));
      const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
      const float kept = 1.0f - ramp;
      inv[size_t(i)] = interpolated * (1.0f - kept) + extrapolated * kept;
    }
  }
  return inv;
}

float rope_attention_scaling(const ModelConfig& c) {
  return c.rope_scaling.type == "yarn" ? float(c.rope_scaling.attention_factor) : 1.0f;
}

}  // namespace kvlab
