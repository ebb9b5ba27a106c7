#include "matmul.cuh"

#include <cstdlib>

#include "device_common.cuh"
#include "launch.cuh"
#include "rotary.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kWarps = 8;        // per block
constexpr int kRowsPerWarp = 2;  // weight rows per warp: the x loads are shared by both
constexpr int kUnroll = 4;       // 16-byte weight loads per row in flight per lane
constexpr int kMaxSplit = 4;     // warps that may share a row

// The weights of one launch, each owning a run of blocks. With kGated there is one weight
// pair: weight[0] the gate, weight[1] the up projection, weight[0].out the product.
struct GemvGroup {
  GemvWeight weight[kGemvMaxWeights];
  int first_block[kGemvMaxWeights + 1];
  int count;
};

// The weight a block works on (selected, not indexed, so the group stays in parameter space),
// and the block's first output row in it.
__device__ __forceinline__ GemvWeight locate(const GemvGroup& g, int rows_per_block, int64_t* row0) {
  GemvWeight w = g.weight[0];
  int first = 0;
#pragma unroll
  for (int k = 1; k < kGemvMaxWeights; k++)
    if (k < g.count && int(blockIdx.x) >= g.first_block[k]) w = g.weight[k], first = g.first_block[k];
  *row0 = int64_t(int(blockIdx.x) - first) * rows_per_block;
  return w;
}

__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

// 1 / rms of each x row from its sum of squares over all of `in`, or 1 without a norm.
template <int N>
__device__ __forceinline__ void norm_scales(const float (&sum_sq)[N], const GemvNorm& norm, int64_t in,
                                            float (&scale)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) scale[i] = norm.weight ? 1.0f / sqrtf(sum_sq[i] / float(in) + norm.eps) : 1.0f;
}

__device__ __forceinline__ void store(const GemvWeight& wt, int64_t at, float v) {
  wt.out[at] = wt.accumulate ? wt.out[at] + v : v;
}

__device__ __forceinline__ bool rotated(const GemvWeight& wt) {
  return wt.epilogue == GemvEpilogue::kRotate || wt.epilogue == GemvEpilogue::kRotateAppendKey;
}

// The weight row that row r of the warp whose first row is row0 (even) computes: row0 + r, or
// for a rotated weight the RoPE pair row0 / 2 of its heads: channels j and j + half of one head.
__device__ __forceinline__ int64_t pair_row(const GemvWeight& wt, int head_dim, int64_t row0, int r) {
  if (!rotated(wt)) return row0 + r;
  const int half = head_dim / 2;
  const int64_t pair = row0 / 2;
  return pair / half * head_dim + pair % half + r * half;
}

// A pair of rows of token i (rows row and pair_row(.., 1)) stored by their epilogue: rotated,
// into out and, for k and v, into the cache past the head's length (GemvRopeAppend).
__device__ void store_attention_input(const GemvWeight& wt, const GemvRopeAppend& ra, int i, int64_t row,
                                      float (&val)[2]) {
  const int hd = ra.head_dim;
  const int64_t head = row / hd;
  const int channel = int(row % hd), step = rotated(wt) ? hd / 2 : 1;
  if (rotated(wt)) rotate_pair(val, val, 0, 1, ra.rope_positions[i], ra.inv_freq[channel], ra.attention_scaling);
  if (wt.epilogue != GemvEpilogue::kAppendValue) {
    wt.out[i * wt.rows + row] = val[0];
    wt.out[i * wt.rows + row + step] = val[1];
  }
  if (wt.epilogue == GemvEpilogue::kRotate) return;
  const int64_t slot = head * ra.capacity + ra.length[head] + i;
  __nv_bfloat16* dst = (wt.epilogue == GemvEpilogue::kAppendValue ? ra.cache_v : ra.cache_k) + slot * hd + channel;
  dst[0] = __float2bfloat16_rn(val[0]);
  dst[step] = __float2bfloat16_rn(val[1]);
  if (wt.epilogue == GemvEpilogue::kRotateAppendKey && channel == 0) ra.cache_position[slot] = ra.positions[i];
}

// kSplit warps per kRowsPerWarp weight rows (gated: the same row of gate and up), each taking
// every kSplit-th 512-byte run of them: lane l of part p reads 16-byte groups
// 32 * (p + kSplit * j) + l, so a warp's loads stay 512 contiguous bytes. kUnroll *
// kRowsPerWarp independent loads are in flight per lane. Splitting a row over warps matters for
// the short matrices of batch-1 decode (o, down): unsplit, they give each SM too few warps to
// keep enough loads in flight, and each warp a chain of dependent rounds; the parts meet
// through shared memory. The first loads are issued before waiting for the kernel before (the
// weights are constant), so they overlap its tail. x is read with plain loads: the kernel
// before writes it during this one's lifetime, which the read-only path does not allow.
// The next kernel may launch only once the weights are read (after the main loop): let in at
// the start, the next GEMV's blocks sat on this one's SMs for its whole run and cost 7% / 10%
// of the decode step at 1K / 8K (bench/README.md, 2026-12-03).
// A weight with an epilogue stores through store_attention_input; a rotated one's warps take
// RoPE pairs of rows (pair_row). Needs in % 8 == 0 and 16-byte aligned rows (gemv_vectorizes).
template <int N, bool kGated, bool kEpilogue, bool kNorm, int kSplit>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_vec_kernel(const float* x, GemvNorm norm, GemvGroup g, int64_t in, GemvRopeAppend ra) {
  static_assert(kRowsPerWarp == 2, "a gated warp reads one row of gate and one of up; a rotated one a RoPE pair");
  static_assert(!(kGated && kEpilogue), "the gated GEMV stores its product only");
  static_assert(kWarps % kSplit == 0, "a block holds whole row groups");
  constexpr int kOutRowsPerWarp = kGated ? 1 : kRowsPerWarp;
  constexpr int kStep = 32 * kSplit;  // groups between one lane's loads
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, part = warp % kSplit;
  int64_t block_row0;
  const GemvWeight wt = locate(g, kWarps / kSplit * kOutRowsPerWarp, &block_row0);
  const int64_t rows = wt.rows;
  const int64_t row0 = block_row0 + int64_t(warp / kSplit) * kOutRowsPerWarp;
  const bool active = row0 < rows;
  const int64_t groups = in / 8;
  const uint4* wrow[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    // Non-gated, a missing last row re-reads row0; its sum is dropped (a weight with an epilogue
    // has whole heads, so never misses one).
    const int64_t row = kGated              ? row0
                        : row0 + r >= rows  ? row0
                        : kEpilogue         ? pair_row(wt, ra.head_dim, row0, r)
                                            : row0 + r;
    wrow[r] = reinterpret_cast<const uint4*>((kGated ? g.weight[r].w : wt.w) + (active ? row : 0) * in);
  }
  uint4 wv[kUnroll][kRowsPerWarp];
  auto load = [&](int64_t g0) {
#pragma unroll
    for (int u = 0; u < kUnroll; u++)
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++)
        wv[u][r] = g0 + u * kStep < groups ? load_stream(wrow[r] + g0 + u * kStep) : make_uint4(0, 0, 0, 0);
  };
  const int64_t first = int64_t(part) * 32 + lane;
  if (active) load(first);
  wait_for_prior_grid();
  if (kSplit == 1 && !active) return;  // split, every warp must reach the barrier below
  float acc[kRowsPerWarp][N] = {};
  float sum_sq[N] = {};
  for (int64_t g0 = first; active && g0 < groups; g0 += kStep * kUnroll) {
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int64_t gi = g0 + u * kStep;
      if (gi >= groups) break;
      float wf[kRowsPerWarp][8];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) unpack_bf16x8(wv[u][r], wf[r]);
      float nw[8];
      if constexpr (kNorm) unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(norm.weight) + gi), nw);
#pragma unroll
      for (int i = 0; i < N; i++) {
        const float4* xp = reinterpret_cast<const float4*>(x + i * in + gi * 8);
        float xv[8];
        *reinterpret_cast<float4*>(xv) = xp[0];
        *reinterpret_cast<float4*>(xv + 4) = xp[1];
        if constexpr (kNorm) {
#pragma unroll
          for (int e = 0; e < 8; e++) sum_sq[i] += xv[e] * xv[e], xv[e] *= nw[e];
        }
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++)
#pragma unroll
          for (int e = 0; e < 8; e++) acc[r][i] += wf[r][e] * xv[e];
      }
    }
    if (g0 + kStep * kUnroll < groups) load(g0 + kStep * kUnroll);
  }
  allow_dependent_launch();
#pragma unroll
  for (int i = 0; i < N; i++) {
    if constexpr (kNorm) sum_sq[i] = warp_sum(sum_sq[i]);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) acc[r][i] = warp_sum(acc[r][i]);
  }
  if constexpr (kSplit > 1) {
    // Part 0 of each row group adds the other parts' sums.
    __shared__ float parts[kWarps][kRowsPerWarp + 1][N];
    if (lane == 0) {
#pragma unroll
      for (int i = 0; i < N; i++) {
        parts[warp][kRowsPerWarp][i] = sum_sq[i];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++) parts[warp][r][i] = acc[r][i];
      }
    }
    __syncthreads();
    if (part != 0 || !active) return;
#pragma unroll
    for (int p = 1; p < kSplit; p++)
#pragma unroll
      for (int i = 0; i < N; i++) {
        sum_sq[i] += parts[warp + p][kRowsPerWarp][i];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++) acc[r][i] += parts[warp + p][r][i];
      }
  }
  if (lane != 0) return;
  float scale[N];
  norm_scales(sum_sq, norm, in, scale);
#pragma unroll
  for (int i = 0; i < N; i++) {
    if constexpr (kGated) {
      store(wt, i * rows + row0, silu(acc[0][i] * scale[i]) * (acc[1][i] * scale[i]));
    } else if (kEpilogue && wt.epilogue != GemvEpilogue::kStore) {
      const int64_t row = pair_row(wt, ra.head_dim, row0, 0);
      float val[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        const int64_t at = pair_row(wt, ra.head_dim, row0, r);
        val[r] = acc[r][i] * scale[i] + (wt.bias ? bf16_to_float(wt.bias[at]) : 0.0f);
      }
      store_attention_input(wt, ra, i, row, val);
    } else {
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++)
        if (row0 + r < rows)
          store(wt, i * rows + row0 + r,
                acc[r][i] * scale[i] + (wt.bias ? bf16_to_float(wt.bias[row0 + r]) : 0.0f));
    }
  }
}

// Any shape and alignment (odd `in`, sliced tensors): a warp per output row, one element per
// lane step. The next kernel launches after the main loop, as above.
template <bool kGated>
__global__ void gemv_scalar_kernel(const float* x, GemvNorm norm, GemvGroup g, int n, int64_t in) {
  const int lane = threadIdx.x % 32;
  int64_t block_row0;
  const GemvWeight wt = locate(g, kWarps, &block_row0);
  const int64_t row = block_row0 + threadIdx.x / 32;
  wait_for_prior_grid();
  if (row >= wt.rows) return;
  constexpr int kParts = kGated ? 2 : 1;
  float acc[kParts][kGemvMaxRows] = {};
  float sum_sq[kGemvMaxRows] = {};
  for (int64_t c = lane; c < in; c += 32) {
    float wc[kParts];
#pragma unroll
    for (int p = 0; p < kParts; p++) wc[p] = bf16_to_float((kGated ? g.weight[p].w : wt.w)[row * in + c]);
    const float nw = norm.weight ? bf16_to_float(norm.weight[c]) : 1.0f;
#pragma unroll
    for (int i = 0; i < kGemvMaxRows; i++) {
      if (i >= n) break;
      const float xv = x[i * in + c];
      sum_sq[i] += xv * xv;
#pragma unroll
      for (int p = 0; p < kParts; p++) acc[p][i] += wc[p] * (xv * nw);
    }
  }
  allow_dependent_launch();
  float scale[kGemvMaxRows];
  if (norm.weight) {
#pragma unroll
    for (int i = 0; i < kGemvMaxRows; i++)
      if (i < n) sum_sq[i] = warp_sum(sum_sq[i]);
  }
  norm_scales(sum_sq, norm, in, scale);
#pragma unroll
  for (int i = 0; i < kGemvMaxRows; i++) {
    if (i >= n) break;
    float s[kParts];
#pragma unroll
    for (int p = 0; p < kParts; p++) s[p] = warp_sum(acc[p][i]) * scale[i];
    if (lane != 0) continue;
    if constexpr (kGated) {
      store(wt, i * wt.rows + row, silu(s[0]) * s[1]);
    } else {
      store(wt, i * wt.rows + row, s[0] + (wt.bias ? bf16_to_float(wt.bias[row]) : 0.0f));
    }
  }
}

// Runs of blocks per weight that owns blocks (all but up when gated), into g.first_block; the total.
unsigned assign_blocks(GemvGroup& g, int owners, int64_t rows_per_block) {
  g.first_block[0] = 0;
  for (int j = 0; j < owners; j++)
    g.first_block[j + 1] = g.first_block[j] + int((g.weight[j].rows + rows_per_block - 1) / rows_per_block);
  return unsigned(g.first_block[owners]);
}

template <int N, bool kGated, bool kEpilogue, bool kNorm, int kSplit>
int resident_blocks_per_sm() {
  static const int blocks = [] {
    int b = 0;
    (void)cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, gemv_vec_kernel<N, kGated, kEpilogue, kNorm, kSplit>,
                                                        kWarps * 32, 0);
    return b > 0 ? b : 1;
  }();
  return blocks;
}

// KVLAB_GEMV_SPLIT=<k> allows at most k warps per row (1 or anything not a number: never
// split), to measure the gain and to test every split on any GPU.
int split_cap() {
  static const int cap = [] {
    const char* v = std::getenv("KVLAB_GEMV_SPLIT");
    return v ? std::atoi(v) : kMaxSplit;
  }();
  return cap;
}

constexpr int64_t rows_per_block(bool gated, int split) { return kWarps / split * (gated ? 1 : kRowsPerWarp); }

// The most warps per row whose blocks still all fit on the GPU at once: at batch 1 on a 132-SM
// H100 / H200 the o and down projections of Llama-3.1-8B take 2 (84% -> 94% of the copy rate
// for down alone), while q/k/v stays unsplit, as a second wave of blocks costs it more than the
// split gains (16.5 -> 17.9 µs alone), and gate/up fills the GPU many times over anyway
// (bench/README.md, 2026-12-03).
template <int N, bool kGated, bool kEpilogue, bool kNorm, int kSplit = 1>
cudaError_t launch_split(GemvGroup g, int owners, int sms, cudaStream_t stream, const float* x, const GemvNorm& norm,
                         int64_t in, const GemvRopeAppend& ra) {
  if constexpr (kSplit < kMaxSplit) {
    constexpr int kNext = kSplit * 2;
    GemvGroup next = g;
    const unsigned next_blocks = assign_blocks(next, owners, rows_per_block(kGated, kNext));
    if (kNext <= split_cap() &&
        next_blocks <= unsigned(resident_blocks_per_sm<N, kGated, kEpilogue, kNorm, kNext>() * sms))
      return launch_split<N, kGated, kEpilogue, kNorm, kNext>(g, owners, sms, stream, x, norm, in, ra);
  }
  const unsigned blocks = assign_blocks(g, owners, rows_per_block(kGated, kSplit));
  if (blocks == 0) return cudaSuccess;
  return launch(gemv_vec_kernel<N, kGated, kEpilogue, kNorm, kSplit>, blocks, kWarps * 32, 0, stream, x, norm, g, in,
                ra);
}

// The vectorized kernel for n, found by recursion over the N it is compiled for.
template <bool kGated, bool kEpilogue, bool kNorm, int N = 1>
cudaError_t launch_vec(int n, GemvGroup g, int owners, int sms, cudaStream_t stream, const float* x,
                       const GemvNorm& norm, int64_t in, const GemvRopeAppend& ra) {
  if (n == N) return launch_split<N, kGated, kEpilogue, kNorm>(g, owners, sms, stream, x, norm, in, ra);
  if constexpr (N < kGemvMaxRows) {
    return launch_vec<kGated, kEpilogue, kNorm, N + 1>(n, g, owners, sms, stream, x, norm, in, ra);
  } else {
    return cudaErrorInvalidValue;
  }
}

template <bool kGated>
cudaError_t launch_group(const float* x, const GemvNorm& norm, GemvGroup g, int n, int64_t in, int sms,
                         cudaStream_t stream, const GemvRopeAppend& ra = {}) {
  const int owners = kGated ? 1 : g.count;
  const bool vectorized = gemv_vectorizes(x, norm, g.weight, g.count, in);  // gated: gate and up
  if (kGated) g.count = 1;
  if (!vectorized) {
    if (ra.head_dim) return cudaErrorInvalidValue;  // the scalar kernel has no epilogues
    const unsigned blocks = assign_blocks(g, owners, kWarps);
    if (blocks == 0) return cudaSuccess;
    return launch(gemv_scalar_kernel<kGated>, blocks, kWarps * 32, 0, stream, x, norm, g, n, in);
  }
  // Only the attention input's GEMV carries the epilogues: their registers (64 -> 72 at n = 1)
  // would cost every other GEMV a resident block per SM.
  if constexpr (!kGated) {
    if (ra.head_dim)
      return norm.weight ? launch_vec<false, true, true>(n, g, owners, sms, stream, x, norm, in, ra)
                         : launch_vec<false, true, false>(n, g, owners, sms, stream, x, norm, in, ra);
  }
  return norm.weight ? launch_vec<kGated, false, true>(n, g, owners, sms, stream, x, norm, in, ra)
                     : launch_vec<kGated, false, false>(n, g, owners, sms, stream, x, norm, in, ra);
}

__global__ void add_bias_kernel(float* out, const __nv_bfloat16* __restrict__ bias, int64_t count, int64_t cols) {
  enter_dependent_part();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] += bf16_to_float(bias[i % cols]);
}

}  // namespace

cudaError_t gemv(const float* x, const GemvNorm& norm, const GemvWeight* weights, int count, int n, int64_t in,
                 int sm_count, cudaStream_t stream, const GemvRopeAppend* rope_append) {
  if (count < 1 || count > kGemvMaxWeights || n < 1 || n > kGemvMaxRows) return cudaErrorInvalidValue;
  GemvGroup g{};
  g.count = count;
  bool epilogues = false;
  for (int j = 0; j < count; j++) {
    g.weight[j] = weights[j];
    const bool plain = weights[j].epilogue == GemvEpilogue::kStore;
    epilogues = epilogues || !plain;
    // Rotated rows pair within a head, appended ones within a cache row: whole heads only.
    if (!plain && (!rope_append || rope_append->head_dim % 2 != 0 || rope_append->head_dim <= 0 ||
                   weights[j].rows % rope_append->head_dim != 0 || weights[j].accumulate))
      return cudaErrorInvalidValue;
  }
  return launch_group<false>(x, norm, g, n, in, sm_count, stream, epilogues ? *rope_append : GemvRopeAppend{});
}

bool gemv_vectorizes(const float* x, const GemvNorm& norm, const GemvWeight* weights, int count, int64_t in) {
  bool aligned = in % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                 reinterpret_cast<uintptr_t>(norm.weight) % 16 == 0;
  for (int j = 0; j < count; j++) aligned = aligned && reinterpret_cast<uintptr_t>(weights[j].w) % 16 == 0;
  return aligned;
}

cudaError_t gemv_swiglu(const float* x, const GemvNorm& norm, const __nv_bfloat16* gate, const __nv_bfloat16* up,
                        float* out, int n, int64_t rows, int64_t in, int sm_count, cudaStream_t stream) {
  if (n < 1 || n > kGemvMaxRows) return cudaErrorInvalidValue;
  GemvGroup g{};
  g.count = 2;
  g.weight[0] = GemvWeight{gate, nullptr, out, rows, false};
  g.weight[1] = GemvWeight{up, nullptr, out, rows, false};
  return launch_group<true>(x, norm, g, n, in, sm_count, stream);
}

cudaError_t add_bias(float* out, const __nv_bfloat16* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t count = rows * cols;
  if (count == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = (count + threads - 1) / threads;
  return launch(add_bias_kernel, unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream, out, bias, count, cols);
}

}  // namespace kvlab::kernels
