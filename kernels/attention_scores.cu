// Attention probabilities summed per cache slot, in two passes over the keys.
//
// A probability needs its row's log-sum-exp, which is known only after the row has seen every
// key, so: score_stats_kernel computes each (query, head) row's running max and sum over one
// split of the keys (flash-decoding partials), and score_sum_kernel recomputes q.k for a tile
// of keys, turns it into exp2(s - lse) with the lse merged from the partials, and adds the sum
// over the group's rows to each slot. Each slot has exactly one writer, so no atomics and the
// result is deterministic. Decode (n = 1, H2O's per-step path) reads K twice; the pair is
// memory-bound at long contexts and a few launches' worth of latency at short ones.
//
// Both kernels hold a tile of 16 rows (queries x group heads, query-major, as the split-K
// attention lays them out) in shared memory as fp32, pre-scaled by scale * log2(e), and a tile
// of 32 keys as bf16. Thread (warp w, lane l) computes rows 4w..4w+3 against key l: the q
// reads are warp-wide broadcasts, the key rows are padded by 16 bytes so the 16-byte reads of
// 8 lanes land in 8 different bank groups. With LeanK's middle, a head's keys are its middle
// slots, then its full-region slots; a middle key's kept channels are scattered into a zeroed
// full-width tile row, so the same dot product runs over the kept channels only.
#include <algorithm>

#include "attention_scores.cuh"
#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kKeys = 32;  // keys per tile: one per lane
constexpr int kRowsPerWarp = 4;
constexpr int kRowTile = kWarps * kRowsPerWarp;
constexpr int kMaxTilesPerBlock = 8;  // key tiles a score_sum block walks when q fits one tile
constexpr int kMaxSplits = 128;

int smem_bytes(int head_dim) {
  return kRowTile * head_dim * int(sizeof(float)) + kKeys * (head_dim + 8) * int(sizeof(__nv_bfloat16));
}

struct Tiles {
  float* q;          // [kRowTile][head_dim]
  __nv_bfloat16* k;  // [kKeys][head_dim + 8]
};
__device__ __forceinline__ Tiles tiles(void* smem, int head_dim) {
  float* q = static_cast<float*>(smem);
  return {q, reinterpret_cast<__nv_bfloat16*>(q + kRowTile * head_dim)};
}

// Rows of one KV head: row r is query first_query + r / group, query head r % group. Keys:
// the head's mid_len middle slots, then its len full-region slots.
struct Rows {
  int64_t count;
  int group, len, mid_len, n, first_query;
  __device__ Rows(const AttentionScoreArgs& a, int kvh)
      : count((a.n - a.first_query) * (a.q_heads / a.kv_heads)),
        group(a.q_heads / a.kv_heads),
        len(a.length[kvh]),
        mid_len(a.mid_k && a.kept[kvh] > 0 ? a.mid_length[kvh] : 0),
        n(int(a.n)),
        first_query(a.first_query) {}
  __device__ int keys() const { return mid_len + len; }
  // Keys query row r sees: [0, visible).
  __device__ int visible(int64_t r) const { return mid_len + len - n + first_query + int(r / group) + 1; }
};

__device__ void load_q_tile(const AttentionScoreArgs& a, const Rows& rows, int kvh, int64_t row0, float* sq) {
  const int hd = a.head_dim;
  const float s = a.scale * kLog2e;
  for (int e = threadIdx.x; e < kRowTile * hd; e += kThreads) {
    const int r = e / hd, d = e % hd;
    const int64_t row = row0 + r;
    float x = 0.0f;
    if (row < rows.count) {
      const int64_t query = a.first_query + row / rows.group;
      const int head = kvh * rows.group + int(row % rows.group);
      x = a.q[query * a.q_heads * int64_t(hd) + int64_t(head) * hd + d] * s;
    }
    sq[e] = x;
  }
}

// Keys [key0, key0 + kKeys) of `kvh`; those at or past `end` as zeros (past a head's length
// the cache holds anything, and a NaN there would survive a zero weight), middle keys zero but
// for their kept channels. Called by the whole block (it synchronises for the middle).
__device__ void load_k_tile(const AttentionScoreArgs& a, const Rows& rows, int kvh, int key0, int end,
                            __nv_bfloat16* sk) {
  const int hd = a.head_dim, chunks = hd / 8;
  const __nv_bfloat16* base = a.k + int64_t(kvh) * a.capacity * hd;
  for (int c = threadIdx.x; c < kKeys * chunks; c += kThreads) {
    const int r = c / chunks, ch = c % chunks;
    const int key = key0 + r;
    const bool full = key >= rows.mid_len && key < end;
    const uint4 v = full ? load_stream(base + int64_t(key - rows.mid_len) * hd + ch * 8) : make_uint4(0, 0, 0, 0);
    *reinterpret_cast<uint4*>(sk + r * (hd + 8) + ch * 8) = v;
  }
  if (key0 >= rows.mid_len) return;
  __syncthreads();  // the middle's rows are zeroed
  const int kept = a.kept[kvh], in_middle = min(kKeys, min(end, rows.mid_len) - key0);
  const int32_t* channels = a.channels + int64_t(kvh) * hd;
  const __nv_bfloat16* mid = a.mid_k + a.k_offset[kvh] + int64_t(key0) * kept;
  for (int e = threadIdx.x; e < in_middle * kept; e += kThreads) {
    const int r = e / kept, j = e % kept;
    sk[r * (hd + 8) + channels[j]] = mid[e];
  }
}

// s[i] = q row (4 * warp + i) . key `lane`, in the log2 domain.
__device__ __forceinline__ void dot_rows(const Tiles& t, int head_dim, float (&s)[kRowsPerWarp]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* q = t.q + warp * kRowsPerWarp * head_dim;
  const __nv_bfloat16* k = t.k + lane * (head_dim + 8);
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; i++) s[i] = 0.0f;
  for (int c = 0; c < head_dim / 8; c++) {
    float kf[8];
    unpack_bf16x8(*reinterpret_cast<const uint4*>(k + c * 8), kf);
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; i++) {
      const float4* qp = reinterpret_cast<const float4*>(q + i * head_dim + c * 8);
      const float4 x0 = qp[0], x1 = qp[1];
      s[i] += x0.x * kf[0] + x0.y * kf[1] + x0.z * kf[2] + x0.w * kf[3] + x1.x * kf[4] + x1.y * kf[5] + x1.z * kf[6] +
              x1.w * kf[7];
    }
  }
}

// (max, sum) pairs of the log2-domain softmax; a max of -inf means no key yet.
__device__ __forceinline__ float2 merge(float2 a, float2 b) {
  const float m = fmaxf(a.x, b.x);
  if (m == -INFINITY) return make_float2(-INFINITY, 0.0f);
  return make_float2(m, a.y * exp2f(a.x - m) + b.y * exp2f(b.x - m));
}

// Grid: (split, kv head x row tile). partial: [kv_heads][rows][splits] (max, sum).
__global__ void __launch_bounds__(kThreads)
    score_stats_kernel(AttentionScoreArgs a, int splits, int row_tiles, float2* __restrict__ partial) {
  enter_dependent_part();
  extern __shared__ float4 smem[];
  const Tiles t = tiles(smem, a.head_dim);
  const int split = blockIdx.x, kvh = blockIdx.y / row_tiles, rt = blockIdx.y % row_tiles;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const Rows rows(a, kvh);
  const int64_t row0 = int64_t(rt) * kRowTile;
  load_q_tile(a, rows, kvh, row0, t.q);

  // Splits cut the keys the tile's last row sees into whole key tiles.
  const int kv_end = max(0, rows.visible(min(rows.count, row0 + kRowTile) - 1));
  const int per_split = ((kv_end + splits - 1) / splits + kKeys - 1) / kKeys * kKeys;
  const int k_begin = min(kv_end, split * per_split), k_end = min(kv_end, k_begin + per_split);
  int lim[kRowsPerWarp];
  float2 ml[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; i++) {
    const int64_t row = row0 + warp * kRowsPerWarp + i;
    lim[i] = row < rows.count ? rows.visible(row) : 0;
    ml[i] = make_float2(-INFINITY, 0.0f);
  }
  for (int key0 = k_begin; key0 < k_end; key0 += kKeys) {
    __syncthreads();  // the q tile is in, and everyone is done with the previous key tile
    load_k_tile(a, rows, kvh, key0, k_end, t.k);
    __syncthreads();
    float s[kRowsPerWarp];
    dot_rows(t, a.head_dim, s);
    const int key = key0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; i++)
      if (key < lim[i]) ml[i] = merge(ml[i], make_float2(s[i], 1.0f));
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; i++) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
      ml[i] = merge(ml[i], make_float2(__shfl_xor_sync(kFullMask, ml[i].x, o), __shfl_xor_sync(kFullMask, ml[i].y, o)));
    const int64_t row = row0 + warp * kRowsPerWarp + i;
    if (lane == 0 && row < rows.count) partial[(int64_t(kvh) * rows.count + row) * splits + split] = ml[i];
  }
}

// Grid: (key blocks of tiles_per_block * kKeys slots, kv head). With one row tile the q tile
// stays and the block walks several key tiles; with many (prefill windows) the key tile stays
// and the block walks the row tiles.
__global__ void __launch_bounds__(kThreads) score_sum_kernel(AttentionScoreArgs a, int splits, int row_tiles,
                                                             int tiles_per_block, const float2* __restrict__ partial) {
  enter_dependent_part();
  extern __shared__ float4 smem[];
  __shared__ float lse[kRowTile];
  __shared__ float warp_sum[kWarps][kKeys];
  const Tiles t = tiles(smem, a.head_dim);
  const int kvh = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const Rows rows(a, kvh);
  const int key_base = blockIdx.x * tiles_per_block * kKeys;
  if (key_base >= rows.keys()) return;

  float acc[kMaxTilesPerBlock] = {};
  bool k_loaded = false;
  for (int rt = 0; rt < row_tiles; rt++) {
    const int64_t row0 = int64_t(rt) * kRowTile;
    if (rows.visible(min(rows.count, row0 + kRowTile) - 1) <= key_base) continue;  // no row sees these keys
    __syncthreads();  // everyone is done with the previous q tile
    load_q_tile(a, rows, kvh, row0, t.q);
    if (threadIdx.x < kRowTile && row0 + threadIdx.x < rows.count) {
      const float2* p = partial + (int64_t(kvh) * rows.count + row0 + threadIdx.x) * splits;
      float2 ml = make_float2(-INFINITY, 0.0f);
      for (int s = 0; s < splits; s++) ml = merge(ml, p[s]);
      lse[threadIdx.x] = ml.x + log2f(ml.y);
    }
    int lim[kRowsPerWarp];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; i++) {
      const int64_t row = row0 + warp * kRowsPerWarp + i;
      lim[i] = row < rows.count ? rows.visible(row) : 0;
    }
#pragma unroll
    for (int tile = 0; tile < kMaxTilesPerBlock; tile++) {
      const int key0 = key_base + tile * kKeys;
      if (tile >= tiles_per_block || key0 >= rows.keys()) break;
      if (tiles_per_block > 1 || !k_loaded) {
        __syncthreads();  // everyone is done with the previous key tile
        load_k_tile(a, rows, kvh, key0, rows.keys(), t.k);
        k_loaded = true;
      }
      __syncthreads();  // tiles and lse are in
      float s[kRowsPerWarp];
      dot_rows(t, a.head_dim, s);
      const int key = key0 + lane;
      float p = 0.0f;
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; i++)
        if (key < lim[i]) p += exp2f(s[i] - lse[warp * kRowsPerWarp + i]);
      acc[tile] += p;
    }
  }

  float* score = a.score + int64_t(kvh) * a.capacity;
#pragma unroll
  for (int tile = 0; tile < kMaxTilesPerBlock; tile++) {
    const int key0 = key_base + tile * kKeys;
    if (tile >= tiles_per_block || key0 >= rows.keys()) break;
    __syncthreads();
    warp_sum[warp][lane] = acc[tile];
    __syncthreads();
    const int key = key0 + lane;
    if (warp == 0 && key < rows.keys()) {
      float total = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; w++) total += warp_sum[w][lane];
      if (key < rows.mid_len) a.mid_score[int64_t(kvh) * a.mid_capacity + key] += total;
      else score[key - rows.mid_len] += total;
    }
  }
}

int64_t row_count(const AttentionScoreArgs& a) { return (a.n - a.first_query) * (a.q_heads / a.kv_heads); }

// Key slots a head may hold: the full region's, and the middle's.
int64_t key_capacity(const AttentionScoreArgs& a) { return a.capacity + (a.mid_k ? a.mid_capacity : 0); }

}  // namespace

bool attention_scores_supports(int head_dim) { return head_dim > 0 && head_dim % 8 == 0 && head_dim <= 256; }

AttentionScorePlan attention_scores_plan(const AttentionScoreArgs& a, int sm_count) {
  const int64_t row_tiles = (row_count(a) + kRowTile - 1) / kRowTile;
  const int64_t blocks = std::max<int64_t>(1, a.kv_heads * row_tiles);
  const int64_t by_sms = (2 * int64_t(sm_count) + blocks - 1) / blocks;
  const int64_t by_capacity = std::max<int64_t>(1, key_capacity(a) / (4 * kKeys));
  AttentionScorePlan plan;
  plan.splits = int(std::max<int64_t>(1, std::min({by_sms, by_capacity, int64_t(kMaxSplits)})));
  plan.workspace_bytes = size_t(a.kv_heads) * size_t(row_count(a)) * plan.splits * sizeof(float2);
  return plan;
}

cudaError_t accumulate_attention_scores(const AttentionScoreArgs& a, const AttentionScorePlan& plan, void* workspace,
                                        cudaStream_t stream) {
  const int64_t rows = row_count(a);
  if (rows <= 0) return cudaSuccess;
  if (!attention_scores_supports(a.head_dim) || a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0 || !workspace ||
      a.first_query < 0)
    return cudaErrorInvalidValue;
  const int row_tiles = int((rows + kRowTile - 1) / kRowTile);
  auto* partial = static_cast<float2*>(workspace);
  const int smem = smem_bytes(a.head_dim);
  if (const cudaError_t err = launch(score_stats_kernel, dim3(unsigned(plan.splits), unsigned(a.kv_heads * row_tiles)),
                                     kThreads, smem, stream, a, plan.splits, row_tiles, partial);
      err != cudaSuccess)
    return err;
  const int tiles_per_block = row_tiles == 1 ? kMaxTilesPerBlock : 1;
  const int keys_per_block = tiles_per_block * kKeys;
  const dim3 grid(unsigned((key_capacity(a) + keys_per_block - 1) / keys_per_block), unsigned(a.kv_heads));
  return launch(score_sum_kernel, grid, kThreads, smem, stream, a, plan.splits, row_tiles, tiles_per_block, partial);
}

}  // namespace kvlab::kernels
