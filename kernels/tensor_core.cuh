#pragma once
// Device helpers for the tensor-core attention kernels: cp.async copies into shared memory,
// ldmatrix fragment loads and the bf16 mma.sync m16n8k16. Device code: include from
// kernels/*.cu only.
//
// Shared-memory tiles hold rows of head_dim bf16 as 16-byte chunks, swizzled: chunk c of row r
// sits at c ^ (r % 8), so the 8 rows an ldmatrix reads at one logical chunk fall in 8
// different bank groups. Needs head_dim / 8 to be a multiple of 8 (head_dim 64, 128).
#include <cstdint>

#include "device_common.cuh"

namespace kvlab::kernels {

template <int kChunks>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  static_assert(kChunks % 8 == 0, "the swizzle permutes chunks in groups of 8");
  return row * kChunks + (chunk ^ (row & 7));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared, asynchronously; with fill == false the destination gets zeros.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool fill) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(fill ? 16 : 0));
}
// The same for data read once per step (a decode step's keys and values: at long contexts far
// more than L2 holds), marked first to leave L2, so that its lines go before any other
// (decode +0.4% / +0.9% at 8K / 32K on an H200, bench/README.md 2026-12-03).
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t policy;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool fill, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;" ::"r"(smem_addr(dst)), "l"(src),
               "r"(fill ? 16 : 0), "l"(policy));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c += a (16x16, row-major) * b (16x8, column-major), bf16 in, fp32 accumulate.
// Fragments (lane = 4 * group + quad): a and c hold rows `group` and `group + 8`; c holds
// columns 2 * quad and 2 * quad + 1 of its 8.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// B fragments of two adjacent 8-key column tiles (keys key0.., key0 + 8..) at k-step kk, from a
// [key][chunk] tile: b[0], b[1] for the first tile, b[2], b[3] for the second.
template <int kChunks>
__device__ __forceinline__ void load_key_fragments(uint32_t (&b)[4], const uint4* tile, int key0, int kk, int lane) {
  ldmatrix_x4(b, tile + swizzle<kChunks>(key0 + lane % 8 + (lane / 16) * 8, kk * 2 + (lane / 8) % 2));
}
// B fragments of V (keys key0..key0 + 15 as the k dimension) for the two 8-dim tiles at chunk
// d and d + 1: transposed out of the [key][chunk] tile.
template <int kChunks>
__device__ __forceinline__ void load_value_fragments(uint32_t (&b)[4], const uint4* tile, int key0, int d, int lane) {
  ldmatrix_x4_trans(b, tile + swizzle<kChunks>(key0 + lane % 8 + ((lane / 8) % 2) * 8, d + lane / 16));
}

}  // namespace kvlab::kernels
