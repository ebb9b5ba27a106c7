#include "model/rope.h"

#include <cmath>

namespace kvlab {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(size_t(half), 0.0f);
  for (int i = 0; i < half; i++)
    inv[size_t(i)] = 1.0f / std::pow(float(c.rope_theta), float(2 * i) / float(c.head_dim));
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
  }
  return inv;
}

float rope_attention_scaling(const ModelConfig&) { return 1.0f; }

}  // namespace kvlab
