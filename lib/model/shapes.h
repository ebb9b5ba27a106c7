#pragma once
// Named model shapes (the real configs of popular checkpoints), for measuring speed and memory
// with random weights when no checkpoint is at hand.
#include <string>
#include <vector>

#include "model/config.h"

namespace kvlab {

std::vector<std::string> shape_names();
// Throws Error listing the known names.
ModelConfig shape_config(const std::string& name);

}  // namespace kvlab
