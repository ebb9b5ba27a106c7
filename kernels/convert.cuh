#pragma once
// Element type conversion on the device.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

// Round to nearest even, as the host's f32_to_bf16 does.
cudaError_t convert_f32_to_bf16(const float* src, __nv_bfloat16* dst, int64_t count, cudaStream_t stream);

}  // namespace kvlab::kernels
