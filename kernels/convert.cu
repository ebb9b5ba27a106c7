#include "convert.cuh"

#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

__global__ void f32_to_bf16_kernel(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst, int64_t count) {
  enter_dependent_part();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

}  // namespace

cudaError_t convert_f32_to_bf16(const float* src, __nv_bfloat16* dst, int64_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = (count + threads - 1) / threads;
  return launch(f32_to_bf16_kernel, unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream, src, dst, count);
}

}  // namespace kvlab::kernels
