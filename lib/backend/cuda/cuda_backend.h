#pragma once
// The CUDA backend: bf16 weights and KV, fp32 accumulation. Kernels live in kernels/.
#include <memory>
#include <string>

#include "backend/backend.h"

namespace kvlab {

int cuda_visible_devices();  // 0 when the driver or device is missing
std::string cuda_unavailable_reason();  // why cuda_visible_devices() is 0; empty when it is not
std::unique_ptr<Backend> make_cuda_backend(int device_index);

}  // namespace kvlab
