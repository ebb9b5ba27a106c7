#pragma once
// Shared-memory barriers with phases (mbarrier; try_wait needs sm_90): a producer and its
// consumers hand a buffer back and forth without stopping the whole block. A barrier completes
// a phase once its expected count of arrivals is in; waiters name the phase by its parity
// (0, 1, 0, ...).
// Device code: include from kernels/*.cu only.
#include <cstdint>

#include "tensor_core.cuh"

namespace kvlab::kernels {

// One thread, before a __syncthreads that publishes it.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
// Arrives once this thread's cp.async copies issued so far have landed (the arrival counts
// towards the expected count: noinc).
__device__ __forceinline__ void mbarrier_arrive_on_copies(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(smem_addr(bar)) : "memory");
}
// Waits until the phase of this parity has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nwait:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait;\n}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}

}  // namespace kvlab::kernels
