#pragma once
// Named model shapes (the real configs of popular checkpoints), for measuring speed and memory
// with random weights when no checkpoint is at hand.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"

namespace kvlab {

std::vector<std::string> shape_names();
// Throws Error listing the known names. `hf_overrides` as for load_model_config.
ModelConfig shape_config(const std::string& name, const nlohmann::json& hf_overrides = nlohmann::json());

}  // namespace kvlab
