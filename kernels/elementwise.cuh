#pragma once
// Elementwise kernels as one mechanism: an op applied at every index of [0, count), four
// consecutive elements per thread where every pointer allows it (so a warp moves 256 or 512
// bytes per access rather than 64 or 128), one otherwise. fp32 and bf16 are loaded and stored
// as fp32. Device code: include from kernels/*.cu only.
#include <cuda_bf16.h>

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {

template <int kWidth>
__device__ __forceinline__ void load(const float* p, float (&f)[kWidth]) {
  if constexpr (kWidth == 4) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
  } else {
    f[0] = *p;
  }
}
template <int kWidth>
__device__ __forceinline__ void load(const __nv_bfloat16* p, float (&f)[kWidth]) {
  if constexpr (kWidth == 4) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    f[0] = bf16_lo(v.x), f[1] = bf16_hi(v.x), f[2] = bf16_lo(v.y), f[3] = bf16_hi(v.y);
  } else {
    f[0] = bf16_to_float(*p);
  }
}
template <int kWidth>
__device__ __forceinline__ void store(float* p, const float (&f)[kWidth]) {
  if constexpr (kWidth == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(f[0], f[1], f[2], f[3]);
  } else {
    *p = f[0];
  }
}
template <int kWidth>
__device__ __forceinline__ void store(__nv_bfloat16* p, const float (&f)[kWidth]) {
  if constexpr (kWidth == 4) {
    *reinterpret_cast<uint2*>(p) = make_uint2(pack_bf16x2(f[0], f[1]), pack_bf16x2(f[2], f[3]));
  } else {
    *p = __float2bfloat16_rn(f[0]);
  }
}

// op.apply<kWidth>(i) handles elements [i, i + kWidth).
template <int kWidth, typename Op>
__global__ void elementwise_kernel(Op op, int64_t count) {
  enter_dependent_part();
  const int64_t step = int64_t(gridDim.x) * blockDim.x * kWidth;
  for (int64_t i = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * kWidth; i < count; i += step)
    op.template apply<kWidth>(i);
}

// Whether load<4> / store<4> may access p: aligned to four of its elements.
inline bool aligned_for_four(const void* p, int element_bytes) {
  return reinterpret_cast<uintptr_t>(p) % (4 * element_bytes) == 0;
}

// Whether every array (its pointer and element bytes) is aligned to four of its elements; a null
// one, which the kernel will not touch, passes.
inline bool all_aligned_for_four(std::initializer_list<std::pair<const void*, int>> arrays) {
  for (auto [p, element_bytes] : arrays)
    if (!aligned_for_four(p, element_bytes)) return false;
  return true;
}

// Four at a time needs count % 4 == 0 and every array aligned to four of its elements.
template <typename Op>
cudaError_t launch_elementwise(const Op& op, int64_t count, std::initializer_list<std::pair<const void*, int>> arrays,
                               cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const bool by4 = count % 4 == 0 && all_aligned_for_four(arrays);
  const int threads = 256, width = by4 ? 4 : 1;
  const int64_t blocks = (count / width + threads - 1) / threads;
  const unsigned grid = unsigned(blocks < 65536 ? blocks : 65536);
  return by4 ? launch(elementwise_kernel<4, Op>, grid, threads, 0, stream, op, count)
             : launch(elementwise_kernel<1, Op>, grid, threads, 0, stream, op, count);
}

}  // namespace kvlab::kernels
