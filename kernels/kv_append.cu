#include "kv_append.cuh"

#include "device_common.cuh"
#include "launch.cuh"
#include "rmsnorm_row.cuh"
#include "rotary.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kTokensPerBlock = 64;

// Grid: (token blocks, kv heads). When one block covers all n tokens of a head it also
// advances that head's length, after its barrier: every thread has read the old length by then.
__global__ void kv_append_kernel(KvAppendArgs a, bool advance_length) {
  enter_dependent_part();
  const int h = blockIdx.y;
  const int64_t t0 = int64_t(blockIdx.x) * kTokensPerBlock;
  const int64_t tokens = min(int64_t(kTokensPerBlock), a.n - t0);
  const int32_t len = a.length[h];
  const int64_t slot0 = int64_t(h) * a.capacity + len + t0;
  const int64_t row_stride = int64_t(a.kv_heads) * a.head_dim;
  for (int64_t e = threadIdx.x; e < tokens * a.head_dim; e += blockDim.x) {
    const int64_t i = e / a.head_dim;
    const int d = int(e % a.head_dim);
    const int64_t src = (t0 + i) * row_stride + int64_t(h) * a.head_dim + d;
    const int64_t dst = (slot0 + i) * a.head_dim + d;
    a.cache_k[dst] = __float2bfloat16_rn(a.k[src]);
    a.cache_v[dst] = __float2bfloat16_rn(a.v[src]);
  }
  for (int64_t i = threadIdx.x; i < tokens; i += blockDim.x) a.cache_position[slot0 + i] = a.positions[t0 + i];
  if (advance_length) {
    __syncthreads();
    if (threadIdx.x == 0) a.length[h] = len + int32_t(a.n);
  }
}

__global__ void advance_length_kernel(int32_t* length, int kv_heads, int32_t n) {
  enter_dependent_part();
  for (int h = threadIdx.x; h < kv_heads; h += blockDim.x) length[h] += n;
}

// The head's row [head_dim] of each of the n tokens (stride apart) normed in place, then a
// barrier, so that any thread may use any element afterwards.
__device__ void head_rmsnorm(float* v, int64_t stride, int n, int head_dim, const __nv_bfloat16* weight, float eps) {
  for (int i = 0; i < n; i++) rmsnorm_row(v + i * stride, weight, eps, v + i * stride, head_dim);
  __syncthreads();
}

// Blocks [0, kv_heads): KV head h for all n tokens, keys normed (when asked) and rotated (in
// place and into the cache), values appended, then its length advanced after the barrier
// (every thread has read it by then). Blocks from kv_heads on: one query head each.
__global__ void rope_kv_append_kernel(KvAppendArgs a, RopeArgs r) {
  enter_dependent_part();
  const int half = a.head_dim / 2, pairs = int(a.n) * half;
  if (int(blockIdx.x) >= a.kv_heads) {
    const int h = int(blockIdx.x) - a.kv_heads;
    const int64_t stride = int64_t(r.q_heads) * a.head_dim;
    if (r.q_norm) head_rmsnorm(r.q + int64_t(h) * a.head_dim, stride, int(a.n), a.head_dim, r.q_norm, r.norm_eps);
    for (int e = threadIdx.x; e < pairs; e += blockDim.x) {
      const int i = e / half, j = e % half;
      rotate_pair(r.q + i * stride + int64_t(h) * a.head_dim, j, half, r.positions[i], r.inv_freq[j],
                  r.attention_scaling);
    }
    return;
  }
  const int h = blockIdx.x;
  const int32_t len = a.length[h];
  const int64_t slot0 = int64_t(h) * a.capacity + len;
  if (r.k_norm) {
    head_rmsnorm(r.k + int64_t(h) * a.head_dim, int64_t(a.kv_heads) * a.head_dim, int(a.n), a.head_dim, r.k_norm,
                 r.norm_eps);
  }
  for (int e = threadIdx.x; e < pairs; e += blockDim.x) {
    const int i = e / half, j = e % half;
    const int64_t src = (int64_t(i) * a.kv_heads + h) * a.head_dim, dst = (slot0 + i) * a.head_dim;
    float* k = r.k + src;
    rotate_pair(k, j, half, r.positions[i], r.inv_freq[j], r.attention_scaling);
    a.cache_k[dst + j] = __float2bfloat16_rn(k[j]);
    a.cache_k[dst + j + half] = __float2bfloat16_rn(k[j + half]);
    a.cache_v[dst + j] = __float2bfloat16_rn(a.v[src + j]);
    a.cache_v[dst + j + half] = __float2bfloat16_rn(a.v[src + j + half]);
  }
  for (int i = threadIdx.x; i < a.n; i += blockDim.x) a.cache_position[slot0 + i] = a.positions[i];
  __syncthreads();
  if (threadIdx.x == 0) a.length[h] = len + int32_t(a.n);
}

}  // namespace

cudaError_t rope_kv_append(const KvAppendArgs& a, const RopeArgs& r, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  if (a.n > kRopeAppendMaxTokens || a.head_dim % 2 != 0 || r.k != a.k) return cudaErrorInvalidValue;
  return launch(rope_kv_append_kernel, unsigned(a.kv_heads + r.q_heads), 128, 0, stream, a, r);
}

cudaError_t kv_append(const KvAppendArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  const unsigned token_blocks = unsigned((a.n + kTokensPerBlock - 1) / kTokensPerBlock);
  const cudaError_t err =
      launch(kv_append_kernel, dim3(token_blocks, unsigned(a.kv_heads)), 256, 0, stream, a, token_blocks == 1);
  if (err != cudaSuccess || token_blocks == 1) return err;
  return launch(advance_length_kernel, 1, 32, 0, stream, a.length, a.kv_heads, int32_t(a.n));
}

}  // namespace kvlab::kernels
