// Flash attention (FlashAttention-2 scheme) for a chunk of queries over the bf16 KV cache,
// on tensor cores through mma.sync m16n8k16 (bf16 in, fp32 accumulate).
//
// A block of 4 warps takes 64 * kRowTiles queries of one query head; each warp owns kRowTiles
// 16-row MMA tiles. With two, every K and V fragment a warp reads from shared memory feeds two
// MMAs (shared memory bandwidth, not the tensor cores, bounds a warp of one tile), but a chunk
// makes half the blocks: the launcher takes two only when they still fill the GPU and a long
// prefix evens out the blocks' work. One tile's bf16 Q fragments stay in registers; two tiles'
// would not fit beside their accumulators, so they are read from shared memory a 16-channel
// step at a time. Key/value tiles of kBlockK slots are streamed through shared memory with
// cp.async, double buffered, and the softmax is computed online per row, so memory is O(tile)
// whatever n and the cache length. Tiles are swizzled (tensor_core.cuh).
#include "attention.cuh"
#include "device_common.cuh"
#include "launch.cuh"
#include "tensor_core.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kBlockK = 64;
constexpr int kThreads = kWarps * 32;

template <int kRowTiles>
constexpr int block_queries() { return kWarps * kRowTiles * 16; }

template <int kHeadDim, int kRowTiles>
__global__ void __launch_bounds__(kThreads, 2) prefill_attention_kernel(AttentionArgs a) {
  enter_dependent_part();
  constexpr int kBlockQ = block_queries<kRowTiles>();
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per row
  extern __shared__ uint4 smem[];
  uint4* sq = smem;                         // [kBlockQ][kChunks]
  uint4* sk = sq + kBlockQ * kChunks;       // [2][kBlockK][kChunks]
  uint4* sv = sk + 2 * kBlockK * kChunks;   // [2][kBlockK][kChunks]
  auto swz = [](int row, int chunk) { return swizzle<kChunks>(row, chunk); };

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // The last query tiles see the most keys: start them first.
  const int64_t q0 = int64_t(gridDim.x - 1 - blockIdx.x) * kBlockQ;
  const int h = blockIdx.y;
  const int kvh = h / (a.q_heads / a.kv_heads);
  const int64_t n = a.n;
  const int64_t len = a.length[kvh];
  const int64_t q_stride = int64_t(a.q_heads) * kHeadDim;
  const int64_t first_visible = len - n + q0 + 1;                      // keys seen by the tile's first row
  const int64_t kv_end = len - n + min(n, q0 + kBlockQ);               // ... and by its last row
  const int tiles = kv_end > 0 ? int((kv_end + kBlockK - 1) / kBlockK) : 0;

  for (int c = tid; c < kBlockQ * kChunks; c += kThreads) {
    const int r = c / kChunks, ch = c % kChunks;
    uint4 packed = make_uint4(0, 0, 0, 0);
    if (q0 + r < n) {
      const float4* src = reinterpret_cast<const float4*>(a.q + (q0 + r) * q_stride + int64_t(h) * kHeadDim + ch * 8);
      const float4 x0 = src[0], x1 = src[1];
      packed = make_uint4(pack_bf16x2(x0.x, x0.y), pack_bf16x2(x0.z, x0.w), pack_bf16x2(x1.x, x1.y),
                          pack_bf16x2(x1.z, x1.w));
    }
    sq[swz(r, ch)] = packed;
  }

  const __nv_bfloat16* kbase = a.k + int64_t(kvh) * a.capacity * kHeadDim;
  const __nv_bfloat16* vbase = a.v + int64_t(kvh) * a.capacity * kHeadDim;
  // Slots past kv_end are zero-filled: the cache beyond a head's length holds anything, and a
  // NaN there would survive a zero softmax weight.
  auto load_tile = [&](int t) {
    uint4* dk = sk + (t & 1) * kBlockK * kChunks;
    uint4* dv = sv + (t & 1) * kBlockK * kChunks;
    for (int c = tid; c < kBlockK * kChunks; c += kThreads) {
      const int r = c / kChunks, ch = c % kChunks;
      const int64_t key = int64_t(t) * kBlockK + r;
      const bool ok = key < kv_end;
      const int64_t off = (ok ? key : 0) * kHeadDim + ch * 8;
      cp_async_16(dk + swz(r, ch), kbase + off, ok);
      cp_async_16(dv + swz(r, ch), vbase + off, ok);
    }
  };
  if (tiles > 0) load_tile(0);
  cp_async_commit();
  __syncthreads();  // sq is complete

  // Of row tile i this thread holds rows row[i][0] and row[i][1] = row[i][0] + 8 (the mma
  // accumulator layout), which see vis[i][r] keys; m, l: their running max and sum.
  int row[kRowTiles][2], vis[kRowTiles][2];  // int: a chunk and a head's slots count in int
  float m[kRowTiles][2], l[kRowTiles][2];
#pragma unroll
  for (int i = 0; i < kRowTiles; i++) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      row[i][r] = int(q0) + warp * kRowTiles * 16 + i * 16 + lane / 4 + r * 8;
      vis[i][r] = row[i][r] < n ? int(len - n) + row[i][r] + 1 : 0;
      m[i][r] = -INFINITY;
      l[i][r] = 0.0f;
    }
  }
  const float scale_log2 = a.scale * kLog2e;
  float o[kRowTiles][kHeadDim / 8][4] = {};
  // One tile's Q fragments, held for the whole loop.
  uint32_t q_held[kRowTiles == 1 ? kHeadDim / 16 : 1][4];
  if constexpr (kRowTiles == 1) {
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; kk++)
      ldmatrix_x4(q_held[kk], sq + swz(warp * 16 + lane % 16, kk * 2 + lane / 16));
  }

  for (int t = 0; t < tiles; t++) {
    if (t + 1 < tiles) load_tile(t + 1);
    cp_async_commit();  // possibly empty, so that "all but the newest group" is always tile t
    cp_async_wait<1>();
    __syncthreads();
    const uint4* kt = sk + (t & 1) * kBlockK * kChunks;
    const uint4* vt = sv + (t & 1) * kBlockK * kChunks;

    float s[kRowTiles][kBlockK / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; kk++) {
      uint32_t qf[kRowTiles][4];
#pragma unroll
      for (int i = 0; i < kRowTiles; i++) {
        if constexpr (kRowTiles == 1) {
#pragma unroll
          for (int x = 0; x < 4; x++) qf[i][x] = q_held[kk][x];
        } else {
          ldmatrix_x4(qf[i], sq + swz((warp * kRowTiles + i) * 16 + lane % 16, kk * 2 + lane / 16));
        }
      }
#pragma unroll
      for (int j = 0; j < kBlockK / 8; j += 2) {
        uint32_t b[4];
        load_key_fragments<kChunks>(b, kt, j * 8, kk, lane);
#pragma unroll
        for (int i = 0; i < kRowTiles; i++) {
          mma_bf16(s[i][j], qf[i], b[0], b[1]);
          mma_bf16(s[i][j + 1], qf[i], b[2], b[3]);
        }
      }
    }

    // Scale into the log2 domain; mask keys past each row's causal limit (only tiles that
    // reach past the first row's limit need it).
    const int k0 = t * kBlockK;
    const bool masked = k0 + kBlockK > first_visible;
#pragma unroll
    for (int i = 0; i < kRowTiles; i++) {
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < kBlockK / 8; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = k0 + j * 8 + (lane % 4) * 2 + (e & 1);
          s[i][j][e] = masked && key >= vis[i][e / 2] ? -INFINITY : s[i][j][e] * scale_log2;
          mx[e / 2] = fmaxf(mx[e / 2], s[i][j][e]);
        }
      }
      float ref[2];
#pragma unroll
      for (int r = 0; r < 2; r++) {
        // A row's kBlockK scores are spread over the 4 lanes of a quad.
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 2));
        const float next = fmaxf(m[i][r], mx[r]);
        // A row with no visible key yet keeps max -inf; subtracting 0 keeps exp2 at 0, not NaN.
        ref[r] = next == -INFINITY ? 0.0f : next;
        const float corr = exp2f(m[i][r] - ref[r]);
        m[i][r] = next;
        l[i][r] *= corr;
#pragma unroll
        for (int d = 0; d < kHeadDim / 8; d++) o[i][d][2 * r] *= corr, o[i][d][2 * r + 1] *= corr;
      }
#pragma unroll
      for (int j = 0; j < kBlockK / 8; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          s[i][j][e] = exp2f(s[i][j][e] - ref[e / 2]);
          l[i][e / 2] += s[i][j][e];
        }
      }
    }

    // O += P V: the score accumulators of two key groups of 8 are exactly the A fragment of a
    // 16-key step; V comes transposed out of shared memory, each fragment serving both tiles.
#pragma unroll
    for (int tk = 0; tk < kBlockK / 16; tk++) {
      uint32_t p[kRowTiles][4];
#pragma unroll
      for (int i = 0; i < kRowTiles; i++) {
        p[i][0] = pack_bf16x2(s[i][2 * tk][0], s[i][2 * tk][1]);
        p[i][1] = pack_bf16x2(s[i][2 * tk][2], s[i][2 * tk][3]);
        p[i][2] = pack_bf16x2(s[i][2 * tk + 1][0], s[i][2 * tk + 1][1]);
        p[i][3] = pack_bf16x2(s[i][2 * tk + 1][2], s[i][2 * tk + 1][3]);
      }
#pragma unroll
      for (int d = 0; d < kHeadDim / 8; d += 2) {
        uint32_t b[4];
        load_value_fragments<kChunks>(b, vt, tk * 16, d, lane);
#pragma unroll
        for (int i = 0; i < kRowTiles; i++) {
          mma_bf16(o[i][d], p[i], b[0], b[1]);
          mma_bf16(o[i][d + 1], p[i], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // everyone is done with this buffer before it is refilled
  }

#pragma unroll
  for (int i = 0; i < kRowTiles; i++) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float sum = l[i][r];
      sum += __shfl_xor_sync(kFullMask, sum, 1);
      sum += __shfl_xor_sync(kFullMask, sum, 2);
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      if (row[i][r] >= n) continue;
#pragma unroll
      for (int d = 0; d < kHeadDim / 8; d++) {
        const int64_t col = int64_t(h) * kHeadDim + d * 8 + (lane % 4) * 2;
        *reinterpret_cast<float2*>(a.out + int64_t(row[i][r]) * q_stride + col) =
            make_float2(o[i][d][2 * r] * inv, o[i][d][2 * r + 1] * inv);
      }
    }
  }
}

template <int kHeadDim, int kRowTiles>
cudaError_t launch_tiles(const AttentionArgs& a, cudaStream_t stream) {
  constexpr int kBlockQ = block_queries<kRowTiles>();
  constexpr int smem = (kBlockQ + 4 * kBlockK) * (kHeadDim / 8) * int(sizeof(uint4));
  const auto kernel = prefill_attention_kernel<kHeadDim, kRowTiles>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(unsigned((a.n + kBlockQ - 1) / kBlockQ), unsigned(a.q_heads));
  return launch(kernel, grid, kThreads, smem, stream, a);
}

// Two row tiles a warp where their blocks still give every SM one (a 1,024-token chunk of 32
// heads: 256 blocks; 512 tokens would leave 128 for 132 SMs: 35% slower) and the keys before
// the chunk are at least kWideKeysPerQuery times its own, else one. Fewer, larger blocks balance
// the causal triangle's uneven rows worse; only a long prefix amortises it. 1,024 new tokens of
// 32 heads on an H100 (BM_PrefillAttention), one tile against two: 62.9 / 76.1 µs after no
// keys, 128 / 135 after 1K, 251 / 260 after 3K, 496 / 498 after 7K, 1,996 / 1,921 after 31K.
constexpr int64_t kWideKeysPerQuery = 8;

template <int kHeadDim>
cudaError_t launch(const AttentionArgs& a, int sm_count, cudaStream_t stream) {
  const int64_t wide_blocks = (a.n + block_queries<2>() - 1) / block_queries<2>() * a.q_heads;
  const bool wide = wide_blocks >= sm_count && a.keys_before >= kWideKeysPerQuery * a.n;
  return wide ? launch_tiles<kHeadDim, 2>(a, stream) : launch_tiles<kHeadDim, 1>(a, stream);
}

}  // namespace

bool prefill_attention_supports(int head_dim) { return head_dim == 64 || head_dim == 128; }

cudaError_t prefill_attention(const AttentionArgs& a, int sm_count, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  if (a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0) return cudaErrorInvalidValue;
  switch (a.head_dim) {
    case 64: return launch<64>(a, sm_count, stream);
    case 128: return launch<128>(a, sm_count, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace kvlab::kernels
