#pragma once
// Hopper's warpgroup MMA (wgmma, sm_90a): a warpgroup of 4 warps multiplies a 64-row A by a
// B held in shared memory, asynchronously. Device code: include from kernels/*.cu only.
//
// Operands in shared memory are described by 64-bit descriptors over the 128-byte swizzle:
// 64 bf16 columns make a *panel* whose rows are 128 bytes apart, and 16-byte chunk c of row r
// sits at chunk c ^ (r % 8) (panel_offset: tensor_core.cuh's swizzle over rows of 8 chunks); a
// panel starts 1,024-byte aligned. A K-major
// operand (rows are M or N, columns the reduction) advances by 32 bytes per 16-column step
// within a panel; an MN-major one (rows the reduction, columns N) takes N across panels at the
// leading byte offset. Register fragments match mma.sync m16n8k16's, warp w of the group taking
// rows 16w..16w + 15: an accumulator holds (row, 2 columns) pairs per 8-column block, rows
// lane / 4 and lane / 4 + 8.
#include <cstdint>

#include "tensor_core.cuh"

namespace kvlab::kernels {

constexpr int kPanelCols = 64;     // bf16 columns of a 128-byte swizzled panel
constexpr int kPanelRowBytes = 128;

// Byte offset of 16-byte chunk `chunk` (of kPanelCols / 8) of row `row` within its panel.
__device__ __forceinline__ uint32_t panel_offset(int row, int chunk) {
  return uint32_t(swizzle<kPanelCols / 8>(row, chunk)) * 16;
}

// A shared-memory matrix descriptor, 128-byte swizzle: `leading` = the byte distance between
// panels of an MN-major operand (unused K-major), `stride` = between groups of 8 rows.
__device__ __forceinline__ uint64_t wgmma_descriptor(uint32_t smem_address, uint32_t leading, uint32_t stride) {
  return uint64_t((smem_address & 0x3FFFF) >> 4) | uint64_t(leading >> 4) << 16 | uint64_t(stride >> 4) << 32 |
         uint64_t(1) << 62;
}

// The descriptor of the operand `bytes` further on: its address field (bits 0-13, address / 16)
// takes the sum without a carry while shared memory stays under 256 KB, so one descriptor made
// per tile serves all of its MMAs with an add each.
__device__ __forceinline__ uint64_t wgmma_descriptor_advance(uint64_t descriptor, uint32_t bytes) {
  return descriptor + (bytes >> 4);
}

// Before the first wgmma that reads registers (accumulators, A) written by other instructions.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
// Generic-proxy writes to shared memory (st.shared, cp.async) made visible to wgmma's reads;
// each writing thread runs it before the barrier that publishes them.
__device__ __forceinline__ void fence_shared_for_async() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
// Moves this warpgroup's registers per thread to kCount (a multiple of 8 in 24..256), raising
// (kIncrease) or lowering it; every thread of the warpgroup runs it. ptxas compiles the code
// after it to that count.
template <int kCount, bool kIncrease>
__device__ __forceinline__ void set_max_registers() {
  if constexpr (kIncrease)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kCount));
  else
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kCount));
}
// Pins the registers an asynchronous wgmma uses, placed after its wait: the compiler may not
// read its accumulators before this point, nor reuse the registers of the A fragment it reads.
template <int N>
__device__ __forceinline__ void hold_registers(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void hold_registers(uint32_t (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+r"(r[i])::"memory");
}

// An m64nN accumulator's N / 2 registers per thread: the asm text of operands %0.. and the
// operands themselves (read and written, eight from d[o] at a time), shared by the wgmma below.
#define KVLAB_WGMMA_TEXT_0_31                                               \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define KVLAB_WGMMA_D32_TEXT "{" KVLAB_WGMMA_TEXT_0_31 "}"
#define KVLAB_WGMMA_D64_TEXT                                                          \
  "{" KVLAB_WGMMA_TEXT_0_31 ", "                                                      \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define KVLAB_WGMMA_D8(d, o)                                                                                   \
  "+f"(d[o]), "+f"(d[o + 1]), "+f"(d[o + 2]), "+f"(d[o + 3]), "+f"(d[o + 4]), "+f"(d[o + 5]), "+f"(d[o + 6]), \
      "+f"(d[o + 7])
#define KVLAB_WGMMA_D32(d) KVLAB_WGMMA_D8(d, 0), KVLAB_WGMMA_D8(d, 8), KVLAB_WGMMA_D8(d, 16), KVLAB_WGMMA_D8(d, 24)
#define KVLAB_WGMMA_D64(d) \
  KVLAB_WGMMA_D32(d), KVLAB_WGMMA_D8(d, 32), KVLAB_WGMMA_D8(d, 40), KVLAB_WGMMA_D8(d, 48), KVLAB_WGMMA_D8(d, 56)

// d (+)= A * B, m64nNk16 (N = 64 or 128): A (bf16 pairs, an mma.sync A fragment per warp) in
// registers, B in shared memory, K-major or (kMnMajorB) MN-major.
template <int N, bool kMnMajorB>
__device__ __forceinline__ void wgmma_m64k16_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b,
                                                bool accumulate) {
  static_assert(N == 64 || N == 128, "the accumulators spelt out above");
  if constexpr (N == 64) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " KVLAB_WGMMA_D32_TEXT
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
                 : KVLAB_WGMMA_D32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)), "n"(int(kMnMajorB)));
  } else {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " KVLAB_WGMMA_D64_TEXT
                 ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
                 : KVLAB_WGMMA_D64(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)), "n"(int(kMnMajorB)));
  }
}

#undef KVLAB_WGMMA_D64
#undef KVLAB_WGMMA_D32
#undef KVLAB_WGMMA_D8
#undef KVLAB_WGMMA_D64_TEXT
#undef KVLAB_WGMMA_D32_TEXT
#undef KVLAB_WGMMA_TEXT_0_31

}  // namespace kvlab::kernels
