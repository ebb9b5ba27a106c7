// Demotion is a gather: one block per (token stripe, head), a thread per channel; the length
// update is a separate launch so that no block reads a length another has already advanced.
#include "kv_demote.cuh"
#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kStripes = 64;  // blocks per head; each loops over its share of the tokens

__global__ void kv_demote_kernel(KvDemoteArgs a) {
  enter_dependent_part();
  const int h = blockIdx.y;
  const int n = a.count[h], kept = a.kept[h], base = a.mid_length[h];
  const int64_t src0 = int64_t(h) * a.capacity + a.front[h];
  const int64_t pos0 = int64_t(h) * a.mid_capacity + base;
  for (int i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t src = (src0 + i) * a.head_dim;
    if (threadIdx.x == 0) {
      a.mid_position[pos0 + i] = a.position[src0 + i];
      if (a.score) a.mid_score[pos0 + i] = a.score[src0 + i];
    }
    if (kept == 0) continue;
    __nv_bfloat16* mk = a.mid_k + a.k_offset[h] + int64_t(base + i) * kept;
    __nv_bfloat16* mv = a.mid_v + (int64_t(a.v_row[h]) * a.mid_capacity + base + i) * a.head_dim;
    for (int c = threadIdx.x; c < a.head_dim; c += blockDim.x) {
      if (c < kept) mk[c] = a.k[src + a.channels[h * a.head_dim + c]];
      mv[c] = a.v[src + c];
    }
  }
}

__global__ void kv_demote_lengths_kernel(int32_t* mid_length, const int32_t* count, int kv_heads) {
  enter_dependent_part();
  const int h = threadIdx.x;
  if (h < kv_heads) mid_length[h] += count[h];
}

}  // namespace

cudaError_t kv_demote(const KvDemoteArgs& a, cudaStream_t stream) {
  if (a.kv_heads <= 0 || a.kv_heads > 1024 || a.head_dim <= 0) return cudaErrorInvalidValue;
  if (const cudaError_t err = launch(kv_demote_kernel, dim3(kStripes, unsigned(a.kv_heads)), 128, 0, stream, a);
      err != cudaSuccess)
    return err;
  return launch(kv_demote_lengths_kernel, 1, a.kv_heads, 0, stream, a.mid_length, a.count, a.kv_heads);
}

}  // namespace kvlab::kernels
