#include "kv_append.cuh"

#include "device_common.cuh"
#include "elementwise.cuh"
#include "launch.cuh"
#include "rmsnorm_row.cuh"
#include "rotary.cuh"

#include <type_traits>

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

// kWidth consecutive pairs of a head's row, channels j... into lo and j + half... into hi, from
// src; with inv_freq rotated, and stored rotated into out too (unless it is null).
template <int kWidth, typename In, typename Out>
__device__ __forceinline__ void rotate_pairs(const In* src, Out* out, int j, int half, int32_t position,
                                             const float* inv_freq, float attention_scaling, float (&lo)[kWidth],
                                             float (&hi)[kWidth]) {
  load<kWidth>(src + j, lo);
  load<kWidth>(src + j + half, hi);
  if (!inv_freq) return;
  float freq[kWidth];
  load<kWidth>(inv_freq + j, freq);
#pragma unroll
  for (int w = 0; w < kWidth; w++) rotate(lo[w], hi[w], position, freq[w], attention_scaling);
  if (!out) return;
  store<kWidth>(out + j, lo);
  store<kWidth>(out + j + half, hi);
}

// Grid: (heads, token blocks). Blocks x < kv_heads: KV head x for the block's tokens, keys
// normed (when asked) and rotated (into r.k_out, when given, and the cache; without r.inv_freq,
// stored as they are), values appended. Blocks from kv_heads on: one query head each, into
// r.q_out (QOut float) or r.q_out_bf16 (QOut bf16). q, k and v come from r.q, a.k and a.v (In
// float) or r.q_bf16, a.k_bf16 and a.v_bf16 (In bf16). Each thread takes kWidth consecutive
// pairs of a row (rope_kv_append picks 4 where rows allow).
template <int kWidth, typename In, typename QOut>
__global__ void rope_kv_append_kernel(KvAppendArgs a, RopeArgs r, int tokens_per_block) {
  enter_dependent_part();
  constexpr bool kF32 = std::is_same_v<QOut, float>, kF32In = std::is_same_v<In, float>;
  const In *q_in, *k_in, *v_in;
  if constexpr (kF32In) q_in = r.q, k_in = a.k, v_in = a.v;
  else q_in = r.q_bf16, k_in = a.k_bf16, v_in = a.v_bf16;
  const int half = a.head_dim / 2, lanes = half / kWidth;
  const int t0 = int(blockIdx.y) * tokens_per_block;
  const int tokens = min(tokens_per_block, int(a.n) - t0);
  const int work = tokens * lanes;
  const int32_t* rope_positions = r.positions + t0;
  float lo[kWidth], hi[kWidth];
  if (int(blockIdx.x) >= a.kv_heads) {
    const int64_t head = int64_t(int(blockIdx.x) - a.kv_heads) * a.head_dim;
    const int64_t out_stride = int64_t(r.q_heads) * a.head_dim;
    const In* q = q_in + t0 * r.q_stride + head;
    QOut* out;
    if constexpr (kF32) out = r.q_out + t0 * out_stride + head;
    else out = r.q_out_bf16 + t0 * out_stride + head;
    const In* src = q;
    int64_t src_stride = r.q_stride;
    if constexpr (kF32 && kF32In) {  // the launcher takes head norms in fp32 only
      if (r.q_norm) {
        head_rmsnorm(q, r.q_stride, out, out_stride, tokens, a.head_dim, r.q_norm, r.norm_eps);
        src = out;
        src_stride = out_stride;
      }
    }
    for (int e = threadIdx.x; e < work; e += blockDim.x) {
      const int i = e / lanes, j = e % lanes * kWidth;
      rotate_pairs<kWidth>(src + i * src_stride, out + i * out_stride, j, half, rope_positions[i], r.inv_freq,
                           r.attention_scaling, lo, hi);
    }
    return;
  }
  const int h = blockIdx.x;
  const int32_t len = a.length[h];
  const int64_t slot0 = int64_t(h) * a.capacity + len + t0;
  const int64_t row = int64_t(a.kv_heads) * a.head_dim;
  const In* k = k_in + t0 * a.stride + int64_t(h) * a.head_dim;  // the block's first token, this head
  const In* v = v_in + t0 * a.stride + int64_t(h) * a.head_dim;
  float* k_out = r.k_out ? r.k_out + t0 * row + int64_t(h) * a.head_dim : nullptr;  // rotating only
  const In* k_src = k;
  int64_t k_src_stride = a.stride;
  if constexpr (kF32In) {
    if (r.k_norm) {
      head_rmsnorm(k, a.stride, k_out, row, tokens, a.head_dim, r.k_norm, r.norm_eps);
      k_src = k_out;
      k_src_stride = row;
    }
  }
  for (int e = threadIdx.x; e < work; e += blockDim.x) {
    const int i = e / lanes, j = e % lanes * kWidth;
    __nv_bfloat16* cache_k = a.cache_k + (slot0 + i) * a.head_dim;
    __nv_bfloat16* cache_v = a.cache_v + (slot0 + i) * a.head_dim;
    rotate_pairs<kWidth>(k_src + i * k_src_stride, k_out ? k_out + i * row : nullptr, j, half, rope_positions[i],
                         r.inv_freq, r.attention_scaling, lo, hi);
    store<kWidth>(cache_k + j, lo);
    store<kWidth>(cache_k + j + half, hi);
    load<kWidth>(v + i * a.stride + j, lo);
    load<kWidth>(v + i * a.stride + j + half, hi);
    store<kWidth>(cache_v + j, lo);
    store<kWidth>(cache_v + j + half, hi);
  }
  for (int i = threadIdx.x; i < tokens; i += blockDim.x) a.cache_position[slot0 + i] = a.positions[t0 + i];
  if (gridDim.y == 1) {
    __syncthreads();
    if (threadIdx.x == 0) a.length[h] = len + int32_t(a.n);
  }
}

// Whether every row the kernel reads or writes in fp32 starts on a 16-byte boundary (bf16 cache
// rows then start on 8: head_dim is a multiple of 8), so that a thread may take 4 pairs at once.
// The arrays a call leaves null (no rotation, no queries) pass.
bool rows_take_four(const KvAppendArgs& a, const RopeArgs& r) {
  const int f = sizeof(float), h = sizeof(__nv_bfloat16);
  return a.head_dim % 8 == 0 && a.stride % 4 == 0 && r.q_stride % 4 == 0 &&
         all_aligned_for_four({{a.k, f}, {a.v, f}, {a.k_bf16, h}, {a.v_bf16, h}, {a.cache_k, h}, {a.cache_v, h},
                               {r.k_out, f}, {r.inv_freq, f}, {r.q, f}, {r.q_bf16, h}, {r.q_out, f},
                               {r.q_out_bf16, h}});
}

template <typename In, typename QOut>
cudaError_t launch_rope_kv_append(const KvAppendArgs& a, const RopeArgs& r, dim3 grid, int per_block,
                                  cudaStream_t stream) {
  return rows_take_four(a, r) ? launch(rope_kv_append_kernel<4, In, QOut>, grid, 128, 0, stream, a, r, per_block)
                              : launch(rope_kv_append_kernel<1, In, QOut>, grid, 128, 0, stream, a, r, per_block);
}

}  // namespace

cudaError_t rope_kv_append(const KvAppendArgs& a, const RopeArgs& r, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  const bool rotate = r.inv_freq != nullptr;
  const bool bf16_in = a.k_bf16 != nullptr;
  const bool one_q_out = (r.q_out != nullptr) != (r.q_out_bf16 != nullptr);
  const bool inputs = bf16_in ? a.v_bf16 && !a.k && !a.v && !r.q && (r.q_heads == 0 || (r.q_bf16 && r.q_out_bf16))
                              : a.k && a.v && !a.v_bf16 && !r.q_bf16 && (r.q_heads == 0 || r.q);
  if (a.head_dim % 2 != 0 || !inputs || (r.k_norm && !r.k_out) || ((r.q_out_bf16 || bf16_in) && r.q_norm) ||
      (bf16_in && r.k_norm) || (rotate && r.q_heads > 0 && !one_q_out) || (!rotate && (r.q_heads != 0 || r.k_norm)))
    return cudaErrorInvalidValue;
  const int per_block = a.n <= kRopeAppendMaxTokens ? int(a.n) : kPrefillTokensPerBlock;
  const int64_t token_blocks = (a.n + per_block - 1) / per_block;
  if (token_blocks > 65535) return cudaErrorInvalidValue;
  const dim3 grid(unsigned(a.kv_heads + r.q_heads), unsigned(token_blocks));
  using bf16 = __nv_bfloat16;
  const cudaError_t err = bf16_in      ? launch_rope_kv_append<bf16, bf16>(a, r, grid, per_block, stream)
                          : r.q_out_bf16 ? launch_rope_kv_append<float, bf16>(a, r, grid, per_block, stream)
                                         : launch_rope_kv_append<float, float>(a, r, grid, per_block, stream);
  if (err != cudaSuccess || token_blocks == 1) return err;
  return launch(advance_length_kernel, 1, 32, 0, stream, a.length, a.kv_heads, int32_t(a.n));
}

cudaError_t kv_append(const KvAppendArgs& a, cudaStream_t stream) { return rope_kv_append(a, RopeArgs{}, stream); }

}  // namespace kvlab::kernels
