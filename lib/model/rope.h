#pragma once
// The rotary inverse frequencies of a config, as HF computes them (fp32), including the
// "llama3" and "linear" rope_scaling variants.
#include <vector>

#include "model/config.h"

namespace kvlab {

std::vector<float> rope_inv_freq(const ModelConfig& c);
float rope_attention_scaling(const ModelConfig& c);

}  // namespace kvlab
