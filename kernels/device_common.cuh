#pragma once
// Device helpers shared by the kernels: bf16 packing, 16-byte loads, warp and block
// reductions. Device code: include from kernels/*.cu only, never from host C++.
#include <cuda_bf16.h>
#include <cmath>
#include <cstdint>

namespace kvlab::kernels {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

// A bf16 is the top half of an fp32, so widening is a shift (one instruction per value).
__device__ __forceinline__ float bf16_lo(uint32_t pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t pair) { return __uint_as_float(pair & 0xffff0000u); }
__device__ __forceinline__ float bf16_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// Two floats rounded to nearest-even bf16, the first in the low half (the lower address).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Eight consecutive bf16 widened to fp32.
__device__ __forceinline__ void unpack_bf16x8(const uint4& v, float (&f)[8]) {
  f[0] = bf16_lo(v.x), f[1] = bf16_hi(v.x), f[2] = bf16_lo(v.y), f[3] = bf16_hi(v.y);
  f[4] = bf16_lo(v.z), f[5] = bf16_hi(v.z), f[6] = bf16_lo(v.w), f[7] = bf16_hi(v.w);
}

// A 16-byte load of data read once (weights): read-only path, not kept in L1, so the
// activations that every warp re-reads stay there.
__device__ __forceinline__ uint4 load_stream(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// Programmatic dependent launch (sm_90, kernels/launch.cuh): a kernel starts while the one
// before it drains and waits here for its results (and so, transitively, for every earlier
// kernel's); the one before lets it start once its own blocks have done their reading.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#error "kvlab's kernels are launched as programmatic dependents, which needs sm_90 or later"
#endif
__device__ __forceinline__ void wait_for_prior_grid() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void allow_dependent_launch() { asm volatile("griddepcontrol.launch_dependents;"); }

// The start of every kernel without a reason to do otherwise: wait for the kernels before it,
// then let the next one launch (it waits in turn), so each launch overlaps one kernel's run.
__device__ __forceinline__ void enter_dependent_part() {
  wait_for_prior_grid();
  allow_dependent_launch();
}

// 2^x as ex2.approx.ftz: exp2f compiles to the non-ftz ex2.approx, which keeps subnormal inputs
// and results at the cost of instructions around the hardware's flushing exponential; softmax
// weights never need them (2^-126 of their row's reference is nothing, in bf16 P as in the fp32
// sum). -inf gives 0.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

struct SumOp {
  static constexpr float kIdentity = 0.0f;
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  static constexpr float kIdentity = -INFINITY;
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, SumOp{}); }

// op over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
template <typename Op>
__device__ __forceinline__ float block_reduce(float v, Op op) {
  __shared__ float partial[32];
  __shared__ float total;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  v = warp_reduce(v, op);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < int(blockDim.x / 32) ? partial[lane] : Op::kIdentity;
    s = warp_reduce(s, op);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce(v, SumOp{}); }
__device__ __forceinline__ float block_max(float v) { return block_reduce(v, MaxOp{}); }

}  // namespace kvlab::kernels
