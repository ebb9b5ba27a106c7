#pragma once
// The reference backend: fp32 everywhere, Eigen for the matrix work, OpenMP across heads.
// It is the oracle the CUDA backend is tested against, so clarity beats speed here.
#include <memory>

#include "backend/backend.h"

namespace kvlab {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace kvlab
