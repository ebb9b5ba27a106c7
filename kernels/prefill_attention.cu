// Flash attention (FlashAttention-2 scheme) for a chunk of queries over the bf16 KV cache,
// on tensor cores through mma.sync m16n8k16 (bf16 in, fp32 accumulate).
//
// A block of 4 warps takes 64 queries of one query head; each warp owns 16 query rows, whose
// bf16 Q fragments stay in registers. Key/value tiles of 64 slots are streamed through shared
// memory with cp.async, double buffered, and the softmax is computed online per row, so
// memory is O(tile) whatever n and the cache length. Tiles are swizzled (tensor_core.cuh).
#include "attention.cuh"
#include "device_common.cuh"
#include "launch.cuh"
#include "tensor_core.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kBlockQ = 64;
constexpr int kBlockK = 64;
constexpr int kThreads = 128;

template <int kHeadDim>
__global__ void __launch_bounds__(kThreads) prefill_attention_kernel(AttentionArgs a) {
  enter_dependent_part();
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

  uint32_t qf[kHeadDim / 16][4];
#pragma unroll
  for (int kk = 0; kk < kHeadDim / 16; kk++) ldmatrix_x4(qf[kk], sq + swz(warp * 16 + lane % 16, kk * 2 + lane / 16));

  // This thread holds rows row_a and row_a + 8 of the warp's 16 (the mma accumulator layout).
  const int64_t row_a = q0 + warp * 16 + lane / 4, row_b = row_a + 8;
  const int64_t vis_a = row_a < n ? len - n + row_a + 1 : 0;
  const int64_t vis_b = row_b < n ? len - n + row_b + 1 : 0;
  const float scale_log2 = a.scale * kLog2e;
  float o[kHeadDim / 8][4] = {};
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

  for (int t = 0; t < tiles; t++) {
    if (t + 1 < tiles) load_tile(t + 1);
    cp_async_commit();  // possibly empty, so that "all but the newest group" is always tile t
    cp_async_wait<1>();
    __syncthreads();
    const uint4* kt = sk + (t & 1) * kBlockK * kChunks;
    const uint4* vt = sv + (t & 1) * kBlockK * kChunks;

    float s[kBlockK / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; kk++) {
#pragma unroll
      for (int j = 0; j < kBlockK / 8; j += 2) {
        uint32_t b[4];
        load_key_fragments<kChunks>(b, kt, j * 8, kk, lane);
        mma_bf16(s[j], qf[kk], b[0], b[1]);
        mma_bf16(s[j + 1], qf[kk], b[2], b[3]);
      }
    }

    // Scale into the log2 domain; mask keys past each row's causal limit (only tiles that
    // reach past the first row's limit need it).
    const int64_t k0 = int64_t(t) * kBlockK;
    const bool masked = k0 + kBlockK > first_visible;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int j = 0; j < kBlockK / 8; j++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int64_t key = k0 + j * 8 + (lane % 4) * 2 + (e & 1);
        s[j][e] = masked && key >= (e < 2 ? vis_a : vis_b) ? -INFINITY : s[j][e] * scale_log2;
      }
      mx_a = fmaxf(mx_a, fmaxf(s[j][0], s[j][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[j][2], s[j][3]));
    }
    // A row's 64 scores are spread over the 4 lanes of a quad.
    mx_a = fmaxf(mx_a, __shfl_xor_sync(kFullMask, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(kFullMask, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(kFullMask, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(kFullMask, mx_b, 2));
    const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
    // A row with no visible key yet keeps max -inf; subtracting 0 keeps exp2 at 0, not NaN.
    const float ref_a = new_a == -INFINITY ? 0.0f : new_a, ref_b = new_b == -INFINITY ? 0.0f : new_b;
    const float corr_a = exp2f(m_a - ref_a), corr_b = exp2f(m_b - ref_b);
    m_a = new_a, m_b = new_b;
    l_a *= corr_a, l_b *= corr_b;
#pragma unroll
    for (int d = 0; d < kHeadDim / 8; d++) o[d][0] *= corr_a, o[d][1] *= corr_a, o[d][2] *= corr_b, o[d][3] *= corr_b;
#pragma unroll
    for (int j = 0; j < kBlockK / 8; j++) {
      s[j][0] = exp2f(s[j][0] - ref_a), s[j][1] = exp2f(s[j][1] - ref_a);
      s[j][2] = exp2f(s[j][2] - ref_b), s[j][3] = exp2f(s[j][3] - ref_b);
      l_a += s[j][0] + s[j][1];
      l_b += s[j][2] + s[j][3];
    }

    // O += P V: the score accumulators of two key groups of 8 are exactly the A fragment of a
    // 16-key step; V comes transposed out of shared memory.
#pragma unroll
    for (int tk = 0; tk < kBlockK / 16; tk++) {
      const uint32_t p[4] = {pack_bf16x2(s[2 * tk][0], s[2 * tk][1]), pack_bf16x2(s[2 * tk][2], s[2 * tk][3]),
                             pack_bf16x2(s[2 * tk + 1][0], s[2 * tk + 1][1]),
                             pack_bf16x2(s[2 * tk + 1][2], s[2 * tk + 1][3])};
#pragma unroll
      for (int d = 0; d < kHeadDim / 8; d += 2) {
        uint32_t b[4];
        load_value_fragments<kChunks>(b, vt, tk * 16, d, lane);
        mma_bf16(o[d], p, b[0], b[1]);
        mma_bf16(o[d + 1], p, b[2], b[3]);
      }
    }
    __syncthreads();  // everyone is done with this buffer before it is refilled
  }

  l_a += __shfl_xor_sync(kFullMask, l_a, 1);
  l_a += __shfl_xor_sync(kFullMask, l_a, 2);
  l_b += __shfl_xor_sync(kFullMask, l_b, 1);
  l_b += __shfl_xor_sync(kFullMask, l_b, 2);
  const float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f, inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
#pragma unroll
  for (int d = 0; d < kHeadDim / 8; d++) {
    const int64_t col = int64_t(h) * kHeadDim + d * 8 + (lane % 4) * 2;
    if (row_a < n)
      *reinterpret_cast<float2*>(a.out + row_a * q_stride + col) = make_float2(o[d][0] * inv_a, o[d][1] * inv_a);
    if (row_b < n)
      *reinterpret_cast<float2*>(a.out + row_b * q_stride + col) = make_float2(o[d][2] * inv_b, o[d][3] * inv_b);
  }
}

template <int kHeadDim>
cudaError_t launch(const AttentionArgs& a, cudaStream_t stream) {
  constexpr int smem = (kBlockQ + 4 * kBlockK) * (kHeadDim / 8) * int(sizeof(uint4));
  cudaError_t err = cudaFuncSetAttribute(prefill_attention_kernel<kHeadDim>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(unsigned((a.n + kBlockQ - 1) / kBlockQ), unsigned(a.q_heads));
  return launch(prefill_attention_kernel<kHeadDim>, grid, kThreads, smem, stream, a);
}

}  // namespace

bool prefill_attention_supports(int head_dim) { return head_dim == 64 || head_dim == 128; }

cudaError_t prefill_attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  if (a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0) return cudaErrorInvalidValue;
  switch (a.head_dim) {
    case 64: return launch<64>(a, stream);
    case 128: return launch<128>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace kvlab::kernels
