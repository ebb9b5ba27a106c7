// Split-K (flash-decoding) GQA attention for one or a few queries over a long bf16 KV cache.
//
// The keys of each KV head are cut into `splits` ranges, enough blocks to fill the GPU at any
// length; each block reads its keys once for all the query heads of the group and writes a
// partial (max, sum, unnormalised output), and decode_merge_kernel combines the partials by
// log-sum-exp once every split has finished (launched plainly: see decode_attention). Two block
// kernels share that scheme:
//   decode_attention_mma_kernel  (head_dim 64, 128): the group's query heads (x queries) are
//     the rows of an m16n8k16 tensor-core tile; 4 warps take 16 keys each of every 64-key
//     tile, streamed through a 3-stage cp.async pipeline, and merge at the end. q and the
//     softmax weights are split into bf16 high and low parts, so the result keeps fp32
//     accuracy while the tensor cores do the arithmetic and the loads stay in flight. With up
//     to 8 rows per KV head (batch-1 decode: the GQA group) the block is *packed*: the high
//     parts fill tile rows 0-7 and the low parts rows 8-15, and since a thread's accumulators
//     hold rows r and r + 8, it adds the two halves of a product itself: one mma where the
//     16-row layout needs two (high and low parts in separate tiles);
//   decode_pruned_mma_kernel     (a layer with LeanK's middle region, attention.cuh: PrunedKeys):
//     the full region's splits as above plus the middle's, whose blocks run the same body over
//     keys of kept channels only (32, 64, 96, 128: one instance per count, chosen per block)
//     with q gathered to them; each head takes middle blocks in proportion to the bytes its
//     keys read, all blocks of both regions one wave; one launch, one merge over both;
//   decode_attention_simt_kernel (any head_dim that is a multiple of 8, up to 256): CUDA
//     cores, a key spread over kLanes lanes (8 dims = one 16-byte load each); the fallback.
// A decode step's tokens may sit in the cache past the lengths (AttentionArgs::pending: the
// q/k/v GEMV rotated and appended them, saving rope_kv_append's launch); every block reads
// them as kept, and the merge advances the lengths once every split has read them.
#include <algorithm>
#include "device_common.cuh"
#include "launch.cuh"
#include <cmath>

#include "attention.cuh"
#include "tensor_core.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kMaxSplits = 256;
constexpr int kMergeThreads = 256;
constexpr int kMergeDims = 32;  // output dims per merge block
constexpr int kMmaWarps = 4;
constexpr int kTileKeys = 16 * kMmaWarps;  // keys per pipeline stage: 16 per warp
constexpr int kStages = 3;
constexpr int kRows = 16;                  // rows of one mma tile: (query, head) rows, or 8 packed

template <int kHeadDim>
constexpr int mma_smem_bytes() {
  // Two bf16 copies of the 16 query rows (high and low parts), then the K/V stages.
  return (2 * kRows + kStages * 2 * kTileKeys) * (kHeadDim / 8) * int(sizeof(uint4));
}

// (query, head) rows a block takes: 8 when packed (high and low parts in one tile), else 16.
template <bool kPacked>
constexpr int block_rows() {
  return kPacked ? kRows / 2 : kRows;
}

// The keys one block of the mma kernel attends: one KV head's slots [0, length) of a region.
struct Region {
  const __nv_bfloat16* k;   // rows of kKeyDim channels
  const __nv_bfloat16* v;   // rows of head_dim
  const int32_t* channels;  // the channels q is gathered to (kKeyDim of them), or null: all
  int length;
  bool causal;              // full region: query i sees [0, length - n + i]; middle: all of it
};

// Where a block's result goes: split `split` of `splits` over this region, stored as partial
// slot base + split of `stride` per (query, head); stride 1 writes the output directly.
struct SplitSlot {
  int split, splits, base, stride;
};

// One block of split-K attention on tensor cores over a region whose keys have kKeyDim
// channels (head_dim for the full region, the kept count for LeanK's middle). K rows sit in
// shared memory padded to a multiple of 8 chunks so the swizzle applies; only kKeyDim / 8 are
// loaded and read. Packed, the tile's rows 8-15 are the low parts of rows 0-7, so every
// accumulator's c2, c3 complete the same row's c0, c1.
// settled >= 0: the block has not waited for the kernel before yet, and every key slot below
// `settled` was written before that kernel began; the tiles wholly below it are loaded first,
// then the block waits (see decode_attention_mma_kernel). settled < 0: it has waited.
template <int kHeadDim, int kKeyDim, bool kPacked>
__device__ __forceinline__ void mma_attend(const AttentionArgs& a, const Region& reg, int kvh, int rb, SplitSlot slot,
                                           float* __restrict__ partial, uint4* smem, int settled = -1) {
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kKeyChunks = kKeyDim / 8;
  constexpr int kKeyStride = (kKeyChunks + 7) / 8 * 8;
  constexpr int kStageChunks = kTileKeys * (kKeyStride + kChunks);  // K tile then V tile
  constexpr int kBlockRows = block_rows<kPacked>();
  constexpr int kParts = kPacked ? 1 : 2;  // A fragments per product: packed holds both parts
  uint4* sq = smem;  // [2][kRows][kKeyStride]: high, low tiles; packed, one tile of both
  uint4* stages = sq + 2 * kRows * kKeyStride;            // [kStages][K, V tiles]
  auto swz_k = [](int row, int chunk) { return swizzle<kKeyStride>(row, chunk); };
  auto swz_v = [](int row, int chunk) { return swizzle<kChunks>(row, chunk); };

  const int group = a.q_heads / a.kv_heads;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t rows = a.n * group;
  const int64_t q_stride = int64_t(a.q_heads) * kHeadDim;
  const int len = reg.length;
  // Keys seen by the block's last query; splits are whole tiles of that range.
  const int64_t last_row = min(rows, int64_t(rb + 1) * kBlockRows) - 1;
  const int kv_end = reg.causal ? max(0, len - int(a.n) + int(last_row / group) + 1) : len;
  const int per_split = ((kv_end + slot.splits - 1) / slot.splits + kTileKeys - 1) / kTileKeys * kTileKeys;
  const int k_begin = min(kv_end, slot.split * per_split);
  const int k_end = min(kv_end, k_begin + per_split);
  const int tiles = (k_end - k_begin + kTileKeys - 1) / kTileKeys;

  // Slots past k_end are zero-filled (and masked): past a head's length the cache holds
  // anything, and a NaN there would survive a zero softmax weight.
  const uint64_t read_once = l2_evict_first_policy();
  auto load_tile = [&](int t) {
    uint4* sk = stages + (t % kStages) * kStageChunks;
    uint4* sv = sk + kTileKeys * kKeyStride;
    const int key0 = k_begin + t * kTileKeys;
    for (int c = tid; c < kTileKeys * kKeyChunks; c += kMmaWarps * 32) {
      const int r = c / kKeyChunks, ch = c % kKeyChunks;
      const bool ok = key0 + r < k_end;
      cp_async_16(sk + swz_k(r, ch), reg.k + int64_t(ok ? key0 + r : 0) * kKeyDim + ch * 8, ok, read_once);
    }
    for (int c = tid; c < kTileKeys * kChunks; c += kMmaWarps * 32) {
      const int r = c / kChunks, ch = c % kChunks;
      const bool ok = key0 + r < k_end;
      cp_async_16(sv + swz_v(r, ch), reg.v + int64_t(ok ? key0 + r : 0) * kHeadDim + ch * 8, ok, read_once);
    }
  };
  int t0 = 0;
  if (settled >= 0) {
    for (; t0 < kStages - 1 && t0 < tiles && min(k_begin + (t0 + 1) * kTileKeys, k_end) <= settled; t0++) {
      load_tile(t0);
      cp_async_commit();
    }
    wait_for_prior_grid();
  }
  for (int t = t0; t < kStages - 1; t++) {
    if (t < tiles) load_tile(t);
    cp_async_commit();  // possibly empty: one group per tile keeps the wait count fixed
  }

  // q = high + low, both bf16: the pair carries 16 significant bits, ~fp32 for a dot product.
  // In the middle, q is gathered to the head's kept channels.
  for (int c = tid; c < kBlockRows * kKeyChunks; c += kMmaWarps * 32) {
    const int r = c / kKeyChunks, ch = c % kKeyChunks;
    const int64_t row = int64_t(rb) * kBlockRows + r;
    uint4 hi = make_uint4(0, 0, 0, 0), lo = hi;
    if (row < rows) {
      const int64_t qi = row / group;
      const int h = kvh * group + int(row % group);
      const float* qh = a.q + qi * q_stride + int64_t(h) * kHeadDim;
      float x[8];
      if (reg.channels) {
#pragma unroll
        for (int j = 0; j < 8; j++) x[j] = qh[reg.channels[ch * 8 + j]];
      } else {
        const float4* src = reinterpret_cast<const float4*>(qh + ch * 8);
        const float4 x0 = src[0], x1 = src[1];
        x[0] = x0.x, x[1] = x0.y, x[2] = x0.z, x[3] = x0.w, x[4] = x1.x, x[5] = x1.y, x[6] = x1.z, x[7] = x1.w;
      }
      uint32_t h32[4], l32[4];
#pragma unroll
      for (int j = 0; j < 4; j++) {
        h32[j] = pack_bf16x2(x[2 * j], x[2 * j + 1]);
        l32[j] = pack_bf16x2(x[2 * j] - bf16_lo(h32[j]), x[2 * j + 1] - bf16_hi(h32[j]));
      }
      hi = make_uint4(h32[0], h32[1], h32[2], h32[3]);
      lo = make_uint4(l32[0], l32[1], l32[2], l32[3]);
    }
    sq[swz_k(r, ch)] = hi;
    sq[kPacked ? swz_k(r + kBlockRows, ch) : kRows * kKeyStride + swz_k(r, ch)] = lo;
  }
  __syncthreads();
  uint32_t qf[kParts][kKeyDim / 16][4];
#pragma unroll
  for (int p = 0; p < kParts; p++)
#pragma unroll
    for (int kk = 0; kk < kKeyDim / 16; kk++)
      ldmatrix_x4(qf[p][kk], sq + p * kRows * kKeyStride + swz_k(lane % 16, kk * 2 + lane / 16));

  // Every warp holds the same rows r_a = lane / 4 and r_a + 8 (packed: r_a twice); each sees
  // keys up to its query's causal limit and the split's end.
  const int r_a = lane / 4;
  auto limit = [&](int r) {
    const int64_t row = int64_t(rb) * kBlockRows + r;
    if (row >= rows) return 0;
    return reg.causal ? min(k_end, len - int(a.n) + int(row / group) + 1) : k_end;
  };
  const int lim_a = limit(r_a), lim_b = kPacked ? lim_a : limit(r_a + 8);
  const float scale_log2 = a.scale * kLog2e;
  float o[kHeadDim / 8][4] = {};
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

  for (int t = 0; t < tiles; t++) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile t is in, and every warp is done with the buffer refilled next
    if (t + kStages - 1 < tiles) load_tile(t + kStages - 1);
    cp_async_commit();
    const uint4* kt = stages + (t % kStages) * kStageChunks;
    const uint4* vt = kt + kTileKeys * kKeyStride;

    // Two accumulator sets (q's parts, or even and odd k-steps when packed) halve the chain
    // of dependent mma.
    float acc[2][2][4] = {};
#pragma unroll
    for (int kk = 0; kk < kKeyDim / 16; kk++) {
      uint32_t b[4];
      load_key_fragments<kKeyStride>(b, kt, warp * 16, kk, lane);
#pragma unroll
      for (int p = 0; p < kParts; p++) {
        float(&set)[2][4] = acc[kPacked ? kk % 2 : p];
        mma_bf16(set[0], qf[p][kk], b[0], b[1]);
        mma_bf16(set[1], qf[p][kk], b[2], b[3]);
      }
    }
    float s[2][4];
#pragma unroll
    for (int j = 0; j < 2; j++) {
#pragma unroll
      for (int e = 0; e < 4; e++) s[j][e] = acc[0][j][e] + acc[1][j][e];
      if constexpr (kPacked) {
        s[j][0] += s[j][2], s[j][1] += s[j][3];
        s[j][2] = s[j][0], s[j][3] = s[j][1];  // row "b" is row a again: its state stays a copy
      }
    }
    const int key0 = k_begin + t * kTileKeys + warp * 16;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int j = 0; j < 2; j++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = key0 + j * 8 + (lane % 4) * 2 + (e & 1);
        s[j][e] = key < (e < 2 ? lim_a : lim_b) ? s[j][e] * scale_log2 : -INFINITY;
      }
      mx_a = fmaxf(mx_a, fmaxf(s[j][0], s[j][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[j][2], s[j][3]));
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(kFullMask, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(kFullMask, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(kFullMask, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(kFullMask, mx_b, 2));
    const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
    // A row with no visible key yet keeps max -inf; subtracting 0 keeps exp2 at 0, not NaN.
    const float ref_a = new_a == -INFINITY ? 0.0f : new_a, ref_b = new_b == -INFINITY ? 0.0f : new_b;
    const float corr_a = exp2_ftz(m_a - ref_a), corr_b = exp2_ftz(m_b - ref_b);
    m_a = new_a, m_b = new_b;
    l_a *= corr_a, l_b *= corr_b;
#pragma unroll
    for (int d = 0; d < kHeadDim / 8; d++) o[d][0] *= corr_a, o[d][1] *= corr_a, o[d][2] *= corr_b, o[d][3] *= corr_b;
#pragma unroll
    for (int j = 0; j < 2; j++) {
      s[j][0] = exp2_ftz(s[j][0] - ref_a), s[j][1] = exp2_ftz(s[j][1] - ref_a);
      if constexpr (kPacked) {
        s[j][2] = s[j][0], s[j][3] = s[j][1];
      } else {
        s[j][2] = exp2_ftz(s[j][2] - ref_b), s[j][3] = exp2_ftz(s[j][3] - ref_b);
      }
      l_a += s[j][0] + s[j][1];
      l_b += s[j][2] + s[j][3];
    }
    // P (rows x 16 keys) as A fragments, high and low bf16 parts: fragment f holds row
    // r_a (f even) or r_a + 8 (f odd) of keys 8 * (f / 2)...; packed, row r_a + 8 is r_a's low part.
    uint32_t pf[kParts][4];
#pragma unroll
    for (int f = 0; f < 4; f++) {
      const int j = f / 2, e = kPacked ? 0 : (f % 2) * 2;
      const float x = s[j][e], y = s[j][e + 1];
      const uint32_t hi = pack_bf16x2(x, y), lo = pack_bf16x2(x - bf16_lo(hi), y - bf16_hi(hi));
      if constexpr (kPacked) {
        pf[0][f] = f % 2 ? lo : hi;
      } else {
        pf[0][f] = hi, pf[1][f] = lo;
      }
    }
#pragma unroll
    for (int d = 0; d < kHeadDim / 8; d += 2) {
      uint32_t b[4];
      load_value_fragments<kChunks>(b, vt, warp * 16, d, lane);
#pragma unroll
      for (int p = 0; p < kParts; p++) {
        mma_bf16(o[d], pf[p], b[0], b[1]);
        mma_bf16(o[d + 1], pf[p], b[2], b[3]);
      }
    }
  }

  allow_dependent_launch();  // the keys are read: with one split, o may take their place on the SMs
  // Merge the 4 warps' (max, sum, output) per row through shared memory (the stages are free).
  l_a += __shfl_xor_sync(kFullMask, l_a, 1);
  l_a += __shfl_xor_sync(kFullMask, l_a, 2);
  l_b += __shfl_xor_sync(kFullMask, l_b, 1);
  l_b += __shfl_xor_sync(kFullMask, l_b, 2);
  cp_async_wait<0>();
  __syncthreads();
  float* sm_o = reinterpret_cast<float*>(smem);       // [warp][row][dim]
  float* sm_m = sm_o + kMmaWarps * kRows * kHeadDim;  // [warp][row]
  float* sm_l = sm_m + kMmaWarps * kRows;
#pragma unroll
  for (int d = 0; d < kHeadDim / 8; d++) {
    const int col = d * 8 + (lane % 4) * 2;
    float* ra = sm_o + (warp * kRows + r_a) * kHeadDim + col;
    float* rb8 = ra + 8 * kHeadDim;
    if constexpr (kPacked) {
      ra[0] = o[d][0] + o[d][2], ra[1] = o[d][1] + o[d][3];
    } else {
      ra[0] = o[d][0], ra[1] = o[d][1], rb8[0] = o[d][2], rb8[1] = o[d][3];
    }
  }
  if (lane % 4 == 0) {
    sm_m[warp * kRows + r_a] = m_a, sm_l[warp * kRows + r_a] = l_a;
    sm_m[warp * kRows + r_a + 8] = m_b, sm_l[warp * kRows + r_a + 8] = l_b;
  }
  __syncthreads();
  for (int e = tid; e < kBlockRows * kHeadDim; e += kMmaWarps * 32) {
    const int r = e / kHeadDim, d = e % kHeadDim;
    const int64_t row = int64_t(rb) * kBlockRows + r;
    if (row >= rows) break;
    float mx = -INFINITY;
    for (int w = 0; w < kMmaWarps; w++) mx = fmaxf(mx, sm_m[w * kRows + r]);
    float sum = 0.0f, out = 0.0f;
    if (mx != -INFINITY) {
      for (int w = 0; w < kMmaWarps; w++) {
        const float wt = exp2_ftz(sm_m[w * kRows + r] - mx);
        sum += sm_l[w * kRows + r] * wt;
        out += sm_o[(w * kRows + r) * kHeadDim + d] * wt;
      }
    }
    const int64_t qi = row / group;
    const int h = kvh * group + int(row % group);
    if (slot.stride == 1) {
      a.out[qi * q_stride + int64_t(h) * kHeadDim + d] = sum > 0.0f ? out / sum : 0.0f;
    } else {
      float* p = partial + ((qi * a.q_heads + h) * slot.stride + slot.base + slot.split) * (kHeadDim + 2);
      if (d == 0) p[0] = mx, p[1] = sum;
      p[2 + d] = out;
    }
  }
}

// Grid: (split, kv head x row block). Row R of a KV head is (query R / group, head R % group).
// With pending tokens the kernel before is the q/k/v GEMV, which writes past the lengths and
// never moves them (the merge of a step before did): the lengths and the keys below them are
// settled before it ends, so a block starts loading those keys as soon as it is resident,
// during the GEMV's tail (the length through L2: this SM's L1 may hold an older one).
// mma_attend lets the next kernel launch once its keys are read.
template <int kHeadDim, bool kPacked>
__global__ void __launch_bounds__(kMmaWarps * 32)
    decode_attention_mma_kernel(AttentionArgs a, int splits, int row_blocks, float* __restrict__ partial) {
  const bool early = a.pending > 0;
  if (!early) wait_for_prior_grid();
  extern __shared__ uint4 smem[];
  const int kvh = blockIdx.y / row_blocks;
  const int settled = __ldcg(a.length + kvh);
  const Region reg{a.k + int64_t(kvh) * a.capacity * kHeadDim, a.v + int64_t(kvh) * a.capacity * kHeadDim, nullptr,
                   settled + a.pending, true};
  mma_attend<kHeadDim, kHeadDim, kPacked>(a, reg, kvh, blockIdx.y % row_blocks,
                                          SplitSlot{int(blockIdx.x), splits, 0, splits}, partial, smem,
                                          early ? settled : -1);
}

// A layer with LeanK's middle region, in one launch. Grid: (blocks, row block): the first
// full_splits * kv_heads blocks take the full region as decode_attention_mma_kernel does, head
// by head; the rest are the middle's, head h's at m.first[h]..., whose partials follow the full
// region's. A middle block dispatches on its head's kept count (uniform over the block).
template <int kHeadDim, bool kPacked>
__global__ void __launch_bounds__(kMmaWarps * 32)
    decode_pruned_mma_kernel(AttentionArgs a, PrunedKeys p, int full_splits, MiddleBlocks m,
                             float* __restrict__ partial) {
  wait_for_prior_grid();  // mma_attend lets the next kernel launch once its keys are read
  extern __shared__ uint4 smem[];
  const int rb = blockIdx.y, stride = full_splits + m.most;
  const int full_blocks = full_splits * a.kv_heads;
  if (int(blockIdx.x) < full_blocks) {
    const int kvh = blockIdx.x / full_splits;
    const Region full{a.k + int64_t(kvh) * a.capacity * kHeadDim, a.v + int64_t(kvh) * a.capacity * kHeadDim, nullptr,
                      a.length[kvh] + a.pending, true};
    const SplitSlot slot{int(blockIdx.x) % full_splits, full_splits, 0, stride};
    mma_attend<kHeadDim, kHeadDim, kPacked>(a, full, kvh, rb, slot, partial, smem);
    return;
  }
  const int b = int(blockIdx.x) - full_blocks;
  int kvh = 0;
  while (b >= m.first[kvh + 1]) kvh++;
  const SplitSlot slot{b - m.first[kvh], m.first[kvh + 1] - m.first[kvh], full_splits, stride};
  const Region reg{p.k + p.k_offset[kvh], p.v + int64_t(p.v_row[kvh]) * p.capacity * kHeadDim,
                   p.channels + kvh * kHeadDim, p.length[kvh], false};
  switch (p.kept[kvh]) {
    case 64: mma_attend<kHeadDim, 64, kPacked>(a, reg, kvh, rb, slot, partial, smem); break;
    case 96:
      if constexpr (kHeadDim >= 96) mma_attend<kHeadDim, 96, kPacked>(a, reg, kvh, rb, slot, partial, smem);
      break;
    case 128:
      if constexpr (kHeadDim >= 128) mma_attend<kHeadDim, 128, kPacked>(a, reg, kvh, rb, slot, partial, smem);
      break;
    default: mma_attend<kHeadDim, 32, kPacked>(a, reg, kvh, rb, slot, partial, smem); break;
  }
}

constexpr int kSimtWarps = 4;
constexpr int kSimtUnroll = 4;  // keys per stream per iteration: 2 * kSimtUnroll 16-byte loads in flight

// Grid: (split, kv head x query-head block, query); kHeads query heads per block.
template <int kLanes, int kHeads>
__global__ void __launch_bounds__(kSimtWarps * 32)
    decode_attention_simt_kernel(AttentionArgs a, int splits, int head_blocks, float* __restrict__ partial) {
  enter_dependent_part();
  constexpr int kStreamsPerWarp = 32 / kLanes;
  constexpr int kStreams = kSimtWarps * kStreamsPerWarp;
  constexpr int kMaxDim = kLanes * 8;
  const int split = blockIdx.x;
  const int kvh = blockIdx.y / head_blocks;
  const int g0 = (blockIdx.y % head_blocks) * kHeads;
  const int64_t qi = blockIdx.z;
  const int group = a.q_heads / a.kv_heads;
  const int hd = a.head_dim;
  const int lane = threadIdx.x % 32;
  const int stream = (threadIdx.x / 32) * kStreamsPerWarp + lane / kLanes;
  const int d0 = (lane % kLanes) * 8;
  const bool dim_ok = d0 < hd;

  const int visible = max(0, a.length[kvh] + a.pending - int(a.n) + int(qi) + 1);
  const int per_split = (visible + splits - 1) / splits;
  const int k_begin = min(visible, split * per_split);
  const int k_end = min(visible, k_begin + per_split);

  // Scores in the log2 domain: q is pre-multiplied by scale * log2(e) so softmax uses exp2.
  const int64_t q_stride = int64_t(a.q_heads) * hd;
  float q[kHeads][8];
#pragma unroll
  for (int g = 0; g < kHeads; g++) {
    const bool ok = dim_ok && g0 + g < group;
    const float4* src = reinterpret_cast<const float4*>(a.q + qi * q_stride + int64_t(kvh * group + g0 + g) * hd + d0);
    const float4 x0 = ok ? src[0] : make_float4(0, 0, 0, 0), x1 = ok ? src[1] : make_float4(0, 0, 0, 0);
    const float s = a.scale * kLog2e;
    q[g][0] = x0.x * s, q[g][1] = x0.y * s, q[g][2] = x0.z * s, q[g][3] = x0.w * s;
    q[g][4] = x1.x * s, q[g][5] = x1.y * s, q[g][6] = x1.z * s, q[g][7] = x1.w * s;
  }

  float m[kHeads], l[kHeads], acc[kHeads][8];
#pragma unroll
  for (int g = 0; g < kHeads; g++) {
    m[g] = -INFINITY, l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; j++) acc[g][j] = 0.0f;
  }

  const __nv_bfloat16* kbase = a.k + int64_t(kvh) * a.capacity * hd + d0;
  const __nv_bfloat16* vbase = a.v + int64_t(kvh) * a.capacity * hd + d0;
  for (int base = k_begin; base < k_end; base += kStreams * kSimtUnroll) {
    uint4 kr[kSimtUnroll], vr[kSimtUnroll];
    bool valid[kSimtUnroll];
#pragma unroll
    for (int u = 0; u < kSimtUnroll; u++) {
      const int key = base + u * kStreams + stream;
      valid[u] = key < k_end;
      const bool load = valid[u] && dim_ok;
      kr[u] = load ? load_stream(kbase + int64_t(key) * hd) : make_uint4(0, 0, 0, 0);
      vr[u] = load ? load_stream(vbase + int64_t(key) * hd) : make_uint4(0, 0, 0, 0);
    }
    float s[kHeads][kSimtUnroll];
#pragma unroll
    for (int u = 0; u < kSimtUnroll; u++) {
      float kf[8];
      unpack_bf16x8(kr[u], kf);
#pragma unroll
      for (int g = 0; g < kHeads; g++) {
        float dot = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) dot += q[g][j] * kf[j];
        s[g][u] = dot;
      }
    }
    // Sum each score over the kLanes lanes that hold the key (xor offsets stay inside the group).
#pragma unroll
    for (int o = kLanes / 2; o > 0; o >>= 1)
#pragma unroll
      for (int g = 0; g < kHeads; g++)
#pragma unroll
        for (int u = 0; u < kSimtUnroll; u++) s[g][u] += __shfl_xor_sync(kFullMask, s[g][u], o);

#pragma unroll
    for (int g = 0; g < kHeads; g++) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < kSimtUnroll; u++) {
        s[g][u] = valid[u] ? s[g][u] : -INFINITY;
        mx = fmaxf(mx, s[g][u]);
      }
      // Until a stream has seen a key its max is -inf; subtracting 0 then keeps exp2 at 0, not NaN.
      const float ref = mx == -INFINITY ? 0.0f : mx;
      const float corr = exp2_ftz(m[g] - ref);
      m[g] = mx;
      l[g] *= corr;
#pragma unroll
      for (int j = 0; j < 8; j++) acc[g][j] *= corr;
#pragma unroll
      for (int u = 0; u < kSimtUnroll; u++) {
        s[g][u] = exp2_ftz(s[g][u] - ref);
        l[g] += s[g][u];
      }
    }
#pragma unroll
    for (int u = 0; u < kSimtUnroll; u++) {
      float vf[8];
      unpack_bf16x8(vr[u], vf);
#pragma unroll
      for (int g = 0; g < kHeads; g++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[g][j] += s[g][u] * vf[j];
    }
  }

  // Merge the block's streams, then write the final output (one split) or the partial.
  __shared__ float sm_m[kStreams][kHeads], sm_l[kStreams][kHeads];
  __shared__ float sm_acc[kStreams][kHeads][kMaxDim];
#pragma unroll
  for (int g = 0; g < kHeads; g++) {
    if (lane % kLanes == 0) sm_m[stream][g] = m[g], sm_l[stream][g] = l[g];
#pragma unroll
    for (int j = 0; j < 8; j++) sm_acc[stream][g][d0 + j] = acc[g][j];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kHeads * hd; e += blockDim.x) {
    const int g = e / hd, d = e % hd;
    if (g0 + g >= group) break;
    float mx = -INFINITY;
    for (int st = 0; st < kStreams; st++) mx = fmaxf(mx, sm_m[st][g]);
    float sum = 0.0f, o = 0.0f;
    if (mx != -INFINITY) {
      for (int st = 0; st < kStreams; st++) {
        const float w = exp2_ftz(sm_m[st][g] - mx);
        sum += sm_l[st][g] * w;
        o += sm_acc[st][g][d] * w;
      }
    }
    const int h = kvh * group + g0 + g;
    if (splits == 1) {
      a.out[qi * q_stride + int64_t(h) * hd + d] = sum > 0.0f ? o / sum : 0.0f;
    } else {
      float* p = partial + ((qi * a.q_heads + h) * splits + split) * (hd + 2);
      if (d == 0) p[0] = mx, p[1] = sum;
      p[2 + d] = o;
    }
  }
}

// One block per (query head, query, kMergeDims output dims):
// out = sum_s o_s 2^(m_s - M) / sum_s l_s 2^(m_s - M). Each block computes the splits' weights
// into shared memory, then spreads its dims' sum over kMergeThreads / kMergeDims slices of the
// splits, so each thread issues only a few independent loads: a merge is a few microseconds of
// pure latency otherwise (blocks of 256 threads, as fast as one 1,024-thread block per head and
// as the launch below was measured). A (query, head) holds full_splits + middle.most partials,
// of which its KV head's blocks wrote the first full_splits + (its share of middle).
__global__ void __launch_bounds__(kMergeThreads)
    decode_merge_kernel(AttentionArgs a, int full_splits, MiddleBlocks middle, const float* __restrict__ partial) {
  static_assert(kMergeThreads >= kMaxSplits, "a thread per split computes the weights");
  __shared__ float weight[kMaxSplits];
  __shared__ float slice_sum[kMergeThreads];
  enter_dependent_part();
  const int h = blockIdx.x;
  const int64_t qi = blockIdx.y;
  const int hd = a.head_dim, stride = hd + 2, tid = threadIdx.x;
  const int kvh = h / (a.q_heads / a.kv_heads);
  const int splits = full_splits + (middle.most ? middle.first[kvh + 1] - middle.first[kvh] : 0);
  const float* p = partial + (qi * a.q_heads + h) * (full_splits + middle.most) * stride;
  // Every split has read the lengths (this launch waits for them all): the pending tokens join.
  if (a.pending > 0 && h % (a.q_heads / a.kv_heads) == 0 && qi == 0 && blockIdx.z == 0 && tid == 0)
    a.length[kvh] += a.pending;

  const float m = tid < splits ? p[tid * stride] : -INFINITY;  // an empty split has m = -inf
  const float mx = block_max(m);
  const float wt = tid < splits && mx != -INFINITY ? exp2_ftz(m - mx) : 0.0f;
  if (tid < splits) weight[tid] = wt;
  const float sum = block_sum(tid < splits ? p[tid * stride + 1] * wt : 0.0f);  // its barrier publishes weight

  constexpr int kSlices = kMergeThreads / kMergeDims;
  const int slice = tid / kMergeDims, d = int(blockIdx.z) * kMergeDims + tid % kMergeDims;
  float o = 0.0f;
  if (d < hd) {
#pragma unroll 4
    for (int s = slice; s < splits; s += kSlices) o += weight[s] * p[s * stride + 2 + d];
  }
  slice_sum[tid] = o;
  __syncthreads();
  if (tid < kMergeDims && d < hd) {
    float out = 0.0f;
    for (int k = 0; k < kSlices; k++) out += slice_sum[k * kMergeDims + tid];
    a.out[qi * int64_t(a.q_heads) * hd + int64_t(h) * hd + d] = sum > 0.0f ? out / sum : 0.0f;
  }
}

bool uses_mma(int head_dim) { return head_dim == 64 || head_dim == 128; }
int lanes_for(int head_dim) { return head_dim <= 64 ? 8 : head_dim <= 128 ? 16 : 32; }
int heads_for(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8; }

// Batch-1 decode (at most 8 rows per KV head) takes the packed blocks.
bool packed_rows(const AttentionArgs& a) { return a.n * (a.q_heads / a.kv_heads) <= kRows / 2; }

template <int kHeadDim, bool kPacked>
cudaError_t set_mma_smem() {
  const cudaError_t err = cudaFuncSetAttribute(decode_attention_mma_kernel<kHeadDim, kPacked>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, mma_smem_bytes<kHeadDim>());
  if (err != cudaSuccess) return err;
  return cudaFuncSetAttribute(decode_pruned_mma_kernel<kHeadDim, kPacked>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              mma_smem_bytes<kHeadDim>());
}

template <typename Kernel>
int blocks_per_sm(Kernel kernel, int smem_bytes) {
  int n = 0;
  (void)cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kMmaWarps * 32, smem_bytes);
  return n;
}

template <int kHeadDim, bool kPacked>
int mma_blocks_per_sm(bool pruned) {
  if (set_mma_smem<kHeadDim, kPacked>() != cudaSuccess) return 0;
  return pruned ? blocks_per_sm(decode_pruned_mma_kernel<kHeadDim, kPacked>, mma_smem_bytes<kHeadDim>())
                : blocks_per_sm(decode_attention_mma_kernel<kHeadDim, kPacked>, mma_smem_bytes<kHeadDim>());
}

template <bool kPacked>
int64_t blocks_per_head(const AttentionArgs& a) {
  return (a.n * (a.q_heads / a.kv_heads) + block_rows<kPacked>() - 1) / block_rows<kPacked>();
}

// Blocks of the chosen kernel that one SM holds at once, and the blocks per split.
template <bool kPacked>
void mma_shape(const AttentionArgs& a, bool pruned, int* per_sm, int64_t* per_split) {
  *per_split = a.kv_heads * blocks_per_head<kPacked>(a);
  *per_sm = a.head_dim == 64    ? mma_blocks_per_sm<64, kPacked>(pruned)
            : a.head_dim == 128 ? mma_blocks_per_sm<128, kPacked>(pruned)
                                : 0;
}

template <int kHeadDim, bool kPacked>
cudaError_t launch_mma(const AttentionArgs& a, const DecodePlan& plan, const PrunedKeys* pruned, float* partial,
                       cudaStream_t stream) {
  const cudaError_t err = set_mma_smem<kHeadDim, kPacked>();
  if (err != cudaSuccess) return err;
  const int blocks = int(blocks_per_head<kPacked>(a));
  if (pruned)
    return launch(decode_pruned_mma_kernel<kHeadDim, kPacked>,
                  dim3(unsigned(plan.splits * a.kv_heads + plan.middle.first[a.kv_heads]), unsigned(blocks)),
                  kMmaWarps * 32, mma_smem_bytes<kHeadDim>(), stream, a, *pruned, plan.splits, plan.middle, partial);
  return launch(decode_attention_mma_kernel<kHeadDim, kPacked>,
                dim3(unsigned(plan.splits), unsigned(a.kv_heads * blocks)), kMmaWarps * 32, mma_smem_bytes<kHeadDim>(),
                stream, a, plan.splits, blocks, partial);
}

template <int kHeadDim>
cudaError_t launch_mma(const AttentionArgs& a, const DecodePlan& plan, const PrunedKeys* pruned, float* partial,
                       cudaStream_t stream) {
  return packed_rows(a) ? launch_mma<kHeadDim, true>(a, plan, pruned, partial, stream)
                        : launch_mma<kHeadDim, false>(a, plan, pruned, partial, stream);
}

template <int kLanes, int kHeads>
cudaError_t launch_simt(const AttentionArgs& a, int splits, float* partial, cudaStream_t stream) {
  const int group = a.q_heads / a.kv_heads;
  const int head_blocks = (group + kHeads - 1) / kHeads;
  const dim3 grid(unsigned(splits), unsigned(a.kv_heads * head_blocks), unsigned(a.n));
  return launch(decode_attention_simt_kernel<kLanes, kHeads>, grid, kSimtWarps * 32, 0, stream, a, splits, head_blocks,
                partial);
}

template <int kLanes>
cudaError_t launch_simt_lanes(const AttentionArgs& a, int splits, float* partial, cudaStream_t stream) {
  switch (heads_for(a.q_heads / a.kv_heads)) {
    case 1: return launch_simt<kLanes, 1>(a, splits, partial, stream);
    case 2: return launch_simt<kLanes, 2>(a, splits, partial, stream);
    case 4: return launch_simt<kLanes, 4>(a, splits, partial, stream);
    default: return launch_simt<kLanes, 8>(a, splits, partial, stream);
  }
}

}  // namespace

bool decode_attention_supports(int head_dim) { return head_dim > 0 && head_dim % 8 == 0 && head_dim <= 256; }
bool decode_attention_supports_pruned(int head_dim, int kv_heads) {
  return uses_mma(head_dim) && kv_heads <= kMaxPrunedHeads;
}

DecodePlan decode_attention_plan(const AttentionArgs& a, int sm_count, const PrunedKeys* pruned) {
  const int group = a.q_heads / a.kv_heads;
  int per_sm = 2;  // the simt kernel's register use allows two blocks per SM
  int64_t blocks = int64_t(a.kv_heads) * ((group + heads_for(group) - 1) / heads_for(group)) * a.n;
  int keys_per_block_step = kSimtWarps * (32 / lanes_for(a.head_dim)) * kSimtUnroll;
  if (uses_mma(a.head_dim)) {
    if (packed_rows(a)) {
      mma_shape<true>(a, pruned != nullptr, &per_sm, &blocks);
    } else {
      mma_shape<false>(a, pruned != nullptr, &per_sm, &blocks);
    }
    per_sm = std::max(per_sm, 1);
    keys_per_block_step = kTileKeys;
  }
  // Enough splits to fill every SM once, but none shorter than one step of keys when full.
  auto splits_for = [&](int capacity, int64_t limit) {
    const int64_t by_sms = (int64_t(per_sm) * sm_count + blocks - 1) / blocks;
    const int64_t by_capacity = std::max<int64_t>(1, capacity / keys_per_block_step);
    return int(std::max<int64_t>(1, std::min({by_sms, by_capacity, limit})));
  };
  DecodePlan plan;
  if (pruned && a.kv_heads <= kMaxPrunedHeads) {  // decode_attention refuses more heads
    // Exactly one wave over both regions, every block reading about the same bytes, so none
    // waits for a second wave: per row block, the full region (sink + recent window, short but
    // read at every channel) takes its share of the SMs' slots as whole splits per head (rounded
    // up: its blocks start first and must not be the last to end), and the middle the rest,
    // each head in proportion to its keys' bytes (rounded down).
    const int64_t slots = std::max<int64_t>(2 * a.kv_heads, int64_t(per_sm) * sm_count / (blocks / a.kv_heads));
    double middle_bytes[kMaxPrunedHeads], middle_total = 0;
    for (int h = 0; h < a.kv_heads; h++) {
      const int kept = pruned->host_kept[h];
      middle_bytes[h] = kept > 0 ? double(pruned->capacity) * (kept + a.head_dim) : 0.0;
      middle_total += middle_bytes[h];
    }
    const double full = double(a.capacity) * 2 * a.head_dim * a.kv_heads;
    const double full_share = double(slots) * full / (full + middle_total) / a.kv_heads;
    plan.splits = splits_for(a.capacity, std::max<int64_t>(1, int64_t(std::ceil(full_share))));
    const int64_t left = slots - int64_t(plan.splits) * a.kv_heads;
    const int64_t most =
        std::max<int64_t>(1, std::min<int64_t>(pruned->capacity / kTileKeys, kMaxSplits - plan.splits));
    for (int h = 0; h < a.kv_heads; h++) {
      const int64_t share = int64_t(double(left) * middle_bytes[h] / std::max(middle_total, 1.0));
      const int n = middle_bytes[h] > 0 ? int(std::clamp<int64_t>(share, 1, most)) : 0;
      plan.middle.first[h + 1] = plan.middle.first[h] + n;
      plan.middle.most = std::max(plan.middle.most, n);
    }
  } else {
    plan.splits = splits_for(a.capacity, kMaxSplits);
  }
  const int partials = plan.splits + plan.middle.most;  // per (query, head)
  if (partials > 1) plan.workspace_bytes = size_t(a.n) * a.q_heads * partials * (a.head_dim + 2) * sizeof(float);
  return plan;
}

bool decode_attention_advances(const DecodePlan& plan) { return plan.splits + plan.middle.most > 1; }

cudaError_t decode_attention(const AttentionArgs& a, const DecodePlan& plan, void* workspace, cudaStream_t stream,
                             const PrunedKeys* pruned) {
  if (a.n == 0) return cudaSuccess;
  const int partials = plan.splits + plan.middle.most;
  if (!decode_attention_supports(a.head_dim) || a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0 ||
      (partials > 1 && !workspace) || (!pruned && plan.middle.most > 0) ||
      (pruned && !decode_attention_supports_pruned(a.head_dim, a.kv_heads)) ||
      a.pending < 0 || (a.pending > 0 && !decode_attention_advances(plan)) || a.q_bf16 || a.out_bf16)
    return cudaErrorInvalidValue;
  float* partial = static_cast<float*>(workspace);
  cudaError_t err = cudaSuccess;
  if (a.head_dim == 64) {
    err = launch_mma<64>(a, plan, pruned, partial, stream);
  } else if (a.head_dim == 128) {
    err = launch_mma<128>(a, plan, pruned, partial, stream);
  } else {
    switch (lanes_for(a.head_dim)) {
      case 8: err = launch_simt_lanes<8>(a, plan.splits, partial, stream); break;
      case 16: err = launch_simt_lanes<16>(a, plan.splits, partial, stream); break;
      default: err = launch_simt_lanes<32>(a, plan.splits, partial, stream); break;
    }
  }
  if (err != cudaSuccess || partials == 1) return err;
  // Launched early (as the splits pass their main loop), the merge cost 0.2 ms a step at 8K on
  // the H200 (204.6 against 214.1 tok/s; nothing at 1K): bench/README.md, 2026-12-03, fourth lease.
  const dim3 grid(unsigned(a.q_heads), unsigned(a.n), unsigned((a.head_dim + kMergeDims - 1) / kMergeDims));
  return launch_after(decode_merge_kernel, grid, kMergeThreads, 0, stream, a, plan.splits, plan.middle,
                      static_cast<const float*>(partial));
}

}  // namespace kvlab::kernels
