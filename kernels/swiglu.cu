#include "swiglu.cuh"

#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, int64_t count) {
  enter_dependent_part();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

}  // namespace

cudaError_t swiglu(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = (count + threads - 1) / threads;
  return launch(swiglu_kernel, unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream, gate, up, out, count);
}

}  // namespace kvlab::kernels
