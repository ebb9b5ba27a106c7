#pragma once
// The rotary inverse frequencies of a config, as HF computes them (fp32), including the
// "linear", "llama3" and "yarn" rope_scaling variants, and the factor YaRN multiplies cos and
// sin by (1 otherwise).
#include <vector>

#include "model/config.h"

namespace kvlab {

std::vector<float> rope_inv_freq(const ModelConfig& c);
float rope_attention_scaling(const ModelConfig& c);

}  // namespace kvlab
