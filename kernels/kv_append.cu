#include "kv_append.cuh"

#include "device_common.cuh"
#include "launch.cuh"
#include "rmsnorm_row.cuh"
#include "rotary.cuh"

namespace kvlab::kernels {
namespace {

// A decode step's few tokens take one block per head, which also advances the head's length
// after its barrier (every thread has read it by then); a prefill chunk's take a block per 16
// tokens of a head, so that the grid fills the GPU, and a second launch advances the lengths.
constexpr int kPrefillTokensPerBlock = 16;

__global__ void advance_length_kernel(int32_t* length, int kv_heads, int32_t n) {
  enter_dependent_part();
  for (int h = threadIdx.x; h < kv_heads; h += blockDim.x) length[h] += n;
}

// The head's row [head_dim] of each of the n tokens normed from src into dst (rows src_stride
// and dst_stride apart), then a barrier, so that any thread may use any element afterwards.
__device__ void head_rmsnorm(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int n,
                             int head_dim, const __nv_bfloat16* weight, float eps) {
  for (int i = 0; i < n; i++) rmsnorm_row(src + i * src_stride, weight, eps, dst + i * dst_stride, head_dim);
  __syncthreads();
}

// Grid: (heads, token blocks). Blocks x < kv_heads: KV head x for the block's tokens, keys
// normed (when asked) and rotated (into r.k_out and the cache; without r.inv_freq, stored as
// they are), values appended. Blocks from kv_heads on: one query head each, into r.q_out.
__global__ void rope_kv_append_kernel(KvAppendArgs a, RopeArgs r, int tokens_per_block) {
  enter_dependent_part();
  const int half = a.head_dim / 2;
  const int t0 = int(blockIdx.y) * tokens_per_block;
  const int tokens = min(tokens_per_block, int(a.n) - t0);
  const int pairs = tokens * half;
  const int32_t* rope_positions = r.positions + t0;
  if (int(blockIdx.x) >= a.kv_heads) {
    const int64_t head = int64_t(int(blockIdx.x) - a.kv_heads) * a.head_dim;
    const int64_t out_stride = int64_t(r.q_heads) * a.head_dim;
    const float* q = r.q + t0 * r.q_stride + head;
    float* out = r.q_out + t0 * out_stride + head;
    if (r.q_norm) head_rmsnorm(q, r.q_stride, out, out_stride, tokens, a.head_dim, r.q_norm, r.norm_eps);
    const float* src = r.q_norm ? out : q;
    const int64_t src_stride = r.q_norm ? out_stride : r.q_stride;
    for (int e = threadIdx.x; e < pairs; e += blockDim.x) {
      const int i = e / half, j = e % half;
      rotate_pair(src + i * src_stride, out + i * out_stride, j, half, rope_positions[i], r.inv_freq[j],
                  r.attention_scaling);
    }
    return;
  }
  const int h = blockIdx.x;
  const int32_t len = a.length[h];
  const int64_t slot0 = int64_t(h) * a.capacity + len + t0;
  const int64_t row = int64_t(a.kv_heads) * a.head_dim;
  const float* k = a.k + t0 * a.stride + int64_t(h) * a.head_dim;  // the block's first token, this head
  const float* v = a.v + t0 * a.stride + int64_t(h) * a.head_dim;
  float* k_out = r.k_out + t0 * row + int64_t(h) * a.head_dim;      // rotating only
  if (r.k_norm) head_rmsnorm(k, a.stride, k_out, row, tokens, a.head_dim, r.k_norm, r.norm_eps);
  const float* k_src = r.k_norm ? k_out : k;
  const int64_t k_src_stride = r.k_norm ? row : a.stride;
  for (int e = threadIdx.x; e < pairs; e += blockDim.x) {
    const int i = e / half, j = e % half;
    const int64_t dst = (slot0 + i) * a.head_dim;
    const float* key = k_src + i * k_src_stride;
    if (r.inv_freq) {
      key = k_out + i * row;
      rotate_pair(k_src + i * k_src_stride, k_out + i * row, j, half, rope_positions[i], r.inv_freq[j],
                  r.attention_scaling);
    }
    a.cache_k[dst + j] = __float2bfloat16_rn(key[j]);
    a.cache_k[dst + j + half] = __float2bfloat16_rn(key[j + half]);
    a.cache_v[dst + j] = __float2bfloat16_rn(v[i * a.stride + j]);
    a.cache_v[dst + j + half] = __float2bfloat16_rn(v[i * a.stride + j + half]);
  }
  for (int i = threadIdx.x; i < tokens; i += blockDim.x) a.cache_position[slot0 + i] = a.positions[t0 + i];
  if (gridDim.y == 1) {
    __syncthreads();
    if (threadIdx.x == 0) a.length[h] = len + int32_t(a.n);
  }
}

}  // namespace

cudaError_t rope_kv_append(const KvAppendArgs& a, const RopeArgs& r, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  const bool rotate = r.inv_freq != nullptr;
  if (a.head_dim % 2 != 0 || (rotate && (!r.k_out || (r.q_heads > 0 && !r.q_out))) ||
      (!rotate && (r.q_heads != 0 || r.k_norm)))
    return cudaErrorInvalidValue;
  const int per_block = a.n <= kRopeAppendMaxTokens ? int(a.n) : kPrefillTokensPerBlock;
  const int64_t token_blocks = (a.n + per_block - 1) / per_block;
  if (token_blocks > 65535) return cudaErrorInvalidValue;
  const dim3 grid(unsigned(a.kv_heads + r.q_heads), unsigned(token_blocks));
  const cudaError_t err = launch(rope_kv_append_kernel, grid, 128, 0, stream, a, r, per_block);
  if (err != cudaSuccess || token_blocks == 1) return err;
  return launch(advance_length_kernel, 1, 32, 0, stream, a.length, a.kv_heads, int32_t(a.n));
}

cudaError_t kv_append(const KvAppendArgs& a, cudaStream_t stream) { return rope_kv_append(a, RopeArgs{}, stream); }

}  // namespace kvlab::kernels
