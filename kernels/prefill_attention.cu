// Flash attention (FlashAttention-2 scheme, FA3's warp specialization) for a chunk of queries
// over the bf16 KV cache, on Hopper's warpgroup MMA (wgmma.cuh: bf16 in, fp32 accumulate).
//
// A block is two consumer warpgroups over kBlockQ queries each (128 consecutive rows of one
// query head) and a producer warpgroup. The producer streams key/value tiles of kBlockK slots
// into kStages buffers of 128-byte swizzled panels with cp.async, each handed over through
// mbarriers (full when landed, empty once both consumers have read it), so both consumers read
// each tile from shared memory once it is loaded for the two, and drift apart freely: one's
// softmax runs under the other's MMAs. A consumer keeps Q in registers as the A operand of
// S = Q K^T, takes P straight from the score registers for O += P V (an accumulator's layout is
// an A fragment's), scores tile t + 1 while tile t's P V runs, and keeps the softmax online per
// row, so memory is O(tile) whatever n and the cache length. 1,024 new tokens after 7,168
// cached on an H100: 408 µs with one warpgroup a block and Q in shared memory, 383 with Q in
// registers, 348 warp-specialized, 293 (440 TFLOP/s) with the softmax's instructions cut, 249
// (515 TFLOP/s) with lazy rescaling and 128-key tiles (bench/README.md, 2026-12-07).
#include "attention.cuh"
#include "device_common.cuh"
#include "launch.cuh"
#include "mbarrier.cuh"
#include "tensor_core.cuh"
#include "wgmma.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kBlockQ = 64;     // one warpgroup's wgmma rows
constexpr int kConsumers = 2;   // warpgroups sharing each key/value tile
constexpr int kBlockK = 128;    // keys a tile: S is m64n128, P V eight k-steps
constexpr int kStages = 3;      // key/value tiles in flight: how far the two warpgroups may drift apart
constexpr int kConsumerThreads = kConsumers * 128;
constexpr int kProducerThreads = 128;  // a warpgroup, as setmaxnreg asks
constexpr int kThreads = kConsumerThreads + kProducerThreads;
// The register file split unevenly (setmaxnreg): ptxas gives each of the 384 threads 168, the
// consumers then take 232 for their scores, P, Q and output, the producer keeps 40.
constexpr int kConsumerRegisters = 232, kProducerRegisters = 40;
static_assert(kConsumerThreads * kConsumerRegisters + kProducerThreads * kProducerRegisters <= 65536,
              "one block an SM");

template <int kHeadDim>
constexpr int smem_bytes() {
  return kStages * 2 * kBlockK * (kHeadDim / kPanelCols) * kPanelRowBytes;  // kStages x (K, V)
}

// kBf16: q and the output in bf16 (AttentionArgs::q_bf16, out_bf16), else fp32.
template <int kHeadDim, bool kBf16>
__global__ void __launch_bounds__(kThreads, 1) prefill_attention_kernel(AttentionArgs a) {
  enter_dependent_part();
  constexpr int kPanels = kHeadDim / kPanelCols;
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per row
  constexpr uint32_t kKeyPanel = kBlockK * kPanelRowBytes;
  constexpr uint32_t kTile = kPanels * kKeyPanel;
  constexpr uint32_t kGroupStride = 8 * kPanelRowBytes;  // between 8-row groups of a panel
  // Dynamic shared memory starts 1,024-byte aligned on sm_90 (CUTLASS's kernels assume so too);
  // the swizzle works on absolute addresses, so a misaligned base would be silently wrong.
  extern __shared__ __align__(1024) uint8_t smem[];
  // full[s]: stage s's tile has landed (each producer thread's copies); empty[s]: both
  // warpgroups are done reading it (each consumer thread arrives).
  __shared__ uint64_t full[kStages], empty[kStages];
  const uint32_t smem_base = smem_addr(smem);
  if (smem_base % 1024 != 0) __trap();
  auto k_tile = [&](int t) { return uint32_t(t % kStages) * 2 * kTile; };  // offsets from smem
  auto v_tile = [&](int t) { return k_tile(t) + kTile; };
  auto phase = [&](int t) { return uint32_t(t / kStages) & 1; };         // of tile t's stage

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // The last query tiles see the most keys: every head's are started first (blocks go out in
  // x-fastest order), so the light tiles of a causal chunk fill the last wave's gaps.
  const int64_t block_q0 = int64_t(gridDim.y - 1 - blockIdx.y) * kConsumers * kBlockQ;
  const int h = blockIdx.x;
  const int kvh = h / (a.q_heads / a.kv_heads);
  const int64_t n = a.n;
  const int64_t len = a.length[kvh];
  const int64_t q_stride = int64_t(a.q_heads) * kHeadDim;
  const int64_t kv_end = len - n + min(n, block_q0 + kConsumers * kBlockQ);  // keys seen by the last row
  const int tiles = kv_end > 0 ? int((kv_end + kBlockK - 1) / kBlockK) : 0;

  if (tid == 0) {
    for (int st = 0; st < kStages; st++) {
      mbarrier_init(&full[st], kProducerThreads);
      mbarrier_init(&empty[st], kConsumerThreads);
    }
  }
  __syncthreads();

  if (tid >= kConsumerThreads) {
    // The producer: tile t into stage t % kStages once both warpgroups are done with tile
    // t - kStages there. Slots past kv_end are zero-filled: the cache beyond a head's length
    // holds anything, and a NaN there would survive a zero softmax weight.
    set_max_registers<kProducerRegisters, false>();
    // A thread copies chunk ch of rows r0, r0 + kRowStep, ... of each tile: one swizzle (the
    // step is a multiple of 8 rows), so the offsets are worked out once.
    constexpr int kRowStep = kProducerThreads / kChunks, kCopies = kBlockK / kRowStep;
    static_assert(kRowStep % 8 == 0 && kBlockK % kRowStep == 0, "a thread's rows share their swizzle");
    const int r0 = (tid - kConsumerThreads) / kChunks, ch = (tid - kConsumerThreads) % kChunks;
    const uint32_t at = (ch / 8) * kKeyPanel + panel_offset(r0, ch % 8);
    const __nv_bfloat16* kbase = a.k + (int64_t(kvh) * a.capacity + r0) * kHeadDim + ch * 8;
    const __nv_bfloat16* vbase = a.v + (int64_t(kvh) * a.capacity + r0) * kHeadDim + ch * 8;
    for (int t = 0; t < tiles; t++) {
      if (t >= kStages) mbarrier_wait(&empty[t % kStages], phase(t) ^ 1);
      const int64_t key0 = int64_t(t) * kBlockK;
      const bool whole = key0 + kBlockK <= kv_end;
#pragma unroll
      for (int i = 0; i < kCopies; i++) {
        const int64_t row = key0 + i * kRowStep;
        const bool ok = whole || row + r0 < kv_end;
        const int64_t off = (ok ? row : -r0) * kHeadDim;  // a slot past kv_end reads slot 0's address
        const uint32_t dst = at + uint32_t(i * kRowStep * kPanelRowBytes);
        cp_async_16(smem + k_tile(t) + dst, kbase + off, ok);
        cp_async_16(smem + v_tile(t) + dst, vbase + off, ok);
      }
      mbarrier_arrive_on_copies(&full[t % kStages]);
    }
    cp_async_wait<0>();  // none of its copies outlives the block
    return;
  }

  set_max_registers<kConsumerRegisters, true>();
  // A consumer warpgroup: kBlockQ queries from q0; warp wq of it holds rows wq * 16 + lane / 4
  // and 8 below it (the accumulator layout).
  const int wq = warp % 4;
  const int64_t q0 = block_q0 + (warp / 4) * kBlockQ;
  const int64_t first_visible = len - n + q0 + 1;  // keys seen by the warpgroup's first row

  // Q stays in registers as the A operand of every tile's S = Q K^T (leaving shared memory's
  // bandwidth to K and V): 16-column step kk's fragment holds the thread's two rows at columns
  // 16 kk + 2 (lane % 4) and 8 right of them, pairs of bf16.
  uint32_t qf[kHeadDim / 16][4];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t qr = q0 + wq * 16 + lane / 4 + r * 8;
    const int64_t at = qr * q_stride + int64_t(h) * kHeadDim + (lane % 4) * 2;
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; kk++)
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int64_t col = at + kk * 16 + half * 8;
        if constexpr (kBf16) {
          qf[kk][r + 2 * half] = qr < n ? *reinterpret_cast<const uint32_t*>(a.q_bf16 + col) : 0u;
        } else {
          const float2 x = qr < n ? *reinterpret_cast<const float2*>(a.q + col) : make_float2(0.0f, 0.0f);
          qf[kk][r + 2 * half] = pack_bf16x2(x.x, x.y);
        }
      }
  }

  // vis[r] keys are visible to the thread's row r; m, l: the reference of its exponents (log2
  // domain: at most kSlack below its max so far) and its running sum. Rows past the chunk, and
  // a warpgroup's tiles past its own last row's keys, are masked whole.
  int row[2], vis[2];  // int: a chunk and a head's slots count in int
  float m[2], l[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    row[r] = int(q0) + wq * 16 + lane / 4 + r * 8;
    vis[r] = row[r] < n ? int(len - n) + row[r] + 1 : 0;
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  const float scale_log2 = a.scale * kLog2e;
  float o[kPanels][32] = {};  // 64 output dims a panel

  // Tile t + 1's scores are computed while tile t's P V runs (one wait takes both), so the
  // tensor cores go from one to the other without a wait between.
  float s[kBlockK / 2];
  auto tile_ready = [&](int t) {  // the producer's cp.async writes, seen by the wgmma
    mbarrier_wait(&full[t % kStages], phase(t));
    fence_shared_for_async();
  };
  // S = Q K^T of tile t into s, issued. The first MMA overwrites s (no zeroing: a write to s
  // while P V runs makes ptxas serialize every wgmma, its warning C7515).
  auto score = [&](int t) {
    const uint64_t kt = wgmma_descriptor(smem_base + k_tile(t), 16, kGroupStride);
    wgmma_fence();  // s was last written by the softmax
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; kk++) {
      const uint32_t col = (kk % 4) * 32;  // 16 columns of a panel
      wgmma_m64k16_rs<kBlockK, false>(s, qf[kk], wgmma_descriptor_advance(kt, (kk / 4) * kKeyPanel + col), kk > 0);
    }
    wgmma_commit();
  };
  if (tiles > 0) {
    tile_ready(0);
    score(0);
    wgmma_wait_all();
    hold_registers(s);
  }

  for (int t = 0; t < tiles; t++) {
    const uint64_t vt = wgmma_descriptor(smem_base + v_tile(t), kKeyPanel, kGroupStride);
    // Mask keys past each row's causal limit, on the tiles that reach past the first row's
    // limit. s[4 j + e]: keys 8 j + 2 (lane % 4) + e % 2 of row e / 2. The scores stay unscaled
    // until the exponent, whose FFMA scales them into the log2 domain.
    const int k0 = t * kBlockK;
    if (k0 + kBlockK > first_visible) {
#pragma unroll
      for (int j = 0; j < kBlockK / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
          if (k0 + j * 8 + (lane % 4) * 2 + (e & 1) >= vis[e / 2]) s[4 * j + e] = -INFINITY;
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < kBlockK / 2; i++) mx[(i / 2) % 2] = fmaxf(mx[(i / 2) % 2], s[i]);
    // The reference each row's exponents are taken against moves only once the row's max
    // passes it by more than kSlack (log2 domain): P then stays within 2^kSlack, harmless in
    // bf16 and fp32, and the output's rescale (64 multiplies a thread at head_dim 128) runs on
    // few tiles past the first (FA4's lazy rescaling).
    constexpr float kSlack = 8.0f;
    float ref[2], corr[2];
    bool moved = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
      // A row's kBlockK scores are spread over the 4 lanes of a quad.
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 2));
      const float scaled = mx[r] * scale_log2;
      const bool move = scaled > m[r] + kSlack;
      const float next = move ? scaled : m[r];
      // A row with no visible key yet keeps -inf; subtracting 0 keeps exp2 at 0, not NaN.
      ref[r] = next == -INFINITY ? 0.0f : next;
      corr[r] = exp2_ftz(m[r] - ref[r]);
      moved |= move;
      m[r] = next;
      l[r] *= corr[r];
    }
    if (__any_sync(kFullMask, moved)) {
#pragma unroll
      for (int pn = 0; pn < kPanels; pn++)
#pragma unroll
        for (int i = 0; i < 32; i++) o[pn][i] *= corr[(i / 2) % 2];
    }
#pragma unroll
    for (int i = 0; i < kBlockK / 2; i++) {
      s[i] = exp2_ftz(fmaf(s[i], scale_log2, -ref[(i / 2) % 2]));
      l[(i / 2) % 2] += s[i];
    }

    // O += P V: the scores of keys 16 tk.. are the A fragment of a 16-key step; V, rows of keys,
    // is the MN-major B, a panel of 64 dims per MMA.
    uint32_t p[kBlockK / 16][4];
#pragma unroll
    for (int tk = 0; tk < kBlockK / 16; tk++)
#pragma unroll
      for (int x = 0; x < 4; x++) p[tk][x] = pack_bf16x2(s[8 * tk + 2 * x], s[8 * tk + 2 * x + 1]);
    wgmma_fence();
#pragma unroll
    for (int tk = 0; tk < kBlockK / 16; tk++)
#pragma unroll
      for (int pn = 0; pn < kPanels; pn++) {
        const uint32_t offset = pn * kKeyPanel + tk * 16 * kPanelRowBytes;
        wgmma_m64k16_rs<kPanelCols, true>(o[pn], p[tk], wgmma_descriptor_advance(vt, offset), true);
      }
    wgmma_commit();
    if (t + 1 < tiles) {
      tile_ready(t + 1);
      score(t + 1);
    }
    wgmma_wait_all();
#pragma unroll
    for (int pn = 0; pn < kPanels; pn++) hold_registers(o[pn]);
#pragma unroll
    for (int tk = 0; tk < kBlockK / 16; tk++) hold_registers(p[tk]);
    hold_registers(s);
    mbarrier_arrive(&empty[t % kStages]);  // this thread's reads of tile t are done
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    float sum = l[r];
    sum += __shfl_xor_sync(kFullMask, sum, 1);
    sum += __shfl_xor_sync(kFullMask, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    if (row[r] >= n) continue;
#pragma unroll
    for (int pn = 0; pn < kPanels; pn++)
#pragma unroll
      for (int d = 0; d < 8; d++) {
        const int64_t at = int64_t(row[r]) * q_stride + int64_t(h) * kHeadDim + pn * kPanelCols + d * 8 +
                           (lane % 4) * 2;
        const float x = o[pn][4 * d + 2 * r] * inv, y = o[pn][4 * d + 2 * r + 1] * inv;
        if constexpr (kBf16) {
          *reinterpret_cast<uint32_t*>(a.out_bf16 + at) = pack_bf16x2(x, y);
        } else {
          *reinterpret_cast<float2*>(a.out + at) = make_float2(x, y);
        }
      }
  }
}

template <int kHeadDim>
cudaError_t launch(const AttentionArgs& a, cudaStream_t stream) {
  constexpr int smem = smem_bytes<kHeadDim>();
  const auto kernel = a.q_bf16 ? prefill_attention_kernel<kHeadDim, true> : prefill_attention_kernel<kHeadDim, false>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  constexpr int rows = kConsumers * kBlockQ;
  const int64_t row_tiles = (a.n + rows - 1) / rows;
  if (row_tiles > 65535) return cudaErrorInvalidValue;  // grid y: 8M queries a call
  const dim3 grid(unsigned(a.q_heads), unsigned(row_tiles));
  return launch(kernel, grid, kThreads, smem, stream, a);
}

}  // namespace

bool prefill_attention_supports(int head_dim) { return head_dim == 64 || head_dim == 128; }

cudaError_t prefill_attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  const bool bf16 = a.q_bf16 && a.out_bf16 && !a.q && !a.out, f32 = a.q && a.out && !a.q_bf16 && !a.out_bf16;
  if (a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0 || !(bf16 || f32)) return cudaErrorInvalidValue;
  switch (a.head_dim) {
    case 64: return launch<64>(a, stream);
    case 128: return launch<128>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace kvlab::kernels
