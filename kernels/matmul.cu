#include "matmul.cuh"

#include "device_common.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kWarps = 8;          // per block
constexpr int kRowsPerWarp = 2;    // weight rows per warp: the x loads are shared by both
constexpr int kUnroll = 4;         // 16-byte weight loads per row in flight per lane

// Warp per kRowsPerWarp weight rows; lane l reads 16-byte groups l, l + 32, ... of each row,
// so a warp's loads are 512 contiguous bytes. kUnroll * kRowsPerWarp independent loads are
// issued before the first is used, which with ~32 warps per SM keeps enough bytes in flight to
// reach HBM bandwidth at batch 1 (a register double buffer on top measured no faster: it
// halves the warps per SM). Needs in % 8 == 0 and 16-byte aligned rows (the launcher checks).
template <int N>
__global__ void __launch_bounds__(kWarps * 32) gemv_vec_kernel(const float* __restrict__ x,
                                                               const __nv_bfloat16* __restrict__ w,
                                                               const __nv_bfloat16* __restrict__ bias,
                                                               float* __restrict__ out, int64_t rows, int64_t in) {
  const int lane = threadIdx.x % 32;
  const int64_t row0 = (int64_t(blockIdx.x) * kWarps + threadIdx.x / 32) * kRowsPerWarp;
  if (row0 >= rows) return;
  const int64_t groups = in / 8;
  const uint4* wrow[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++)  // a missing last row re-reads row0; its sum is dropped
    wrow[r] = reinterpret_cast<const uint4*>(w + (row0 + r < rows ? row0 + r : row0) * in);
  float acc[kRowsPerWarp][N] = {};
  for (int64_t g0 = lane; g0 < groups; g0 += 32 * kUnroll) {
    uint4 wv[kUnroll][kRowsPerWarp];
#pragma unroll
    for (int u = 0; u < kUnroll; u++)
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++)
        wv[u][r] = g0 + u * 32 < groups ? load_stream(wrow[r] + g0 + u * 32) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const int64_t g = g0 + u * 32;
      if (g >= groups) break;
      float wf[kRowsPerWarp][8];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) unpack_bf16x8(wv[u][r], wf[r]);
#pragma unroll
      for (int i = 0; i < N; i++) {
        const float4* xp = reinterpret_cast<const float4*>(x + i * in + g * 8);
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++)
          acc[r][i] += wf[r][0] * a.x + wf[r][1] * a.y + wf[r][2] * a.z + wf[r][3] * a.w + wf[r][4] * b.x +
                       wf[r][5] * b.y + wf[r][6] * b.z + wf[r][7] * b.w;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    const int64_t row = row0 + r;
#pragma unroll
    for (int i = 0; i < N; i++) {
      const float s = warp_sum(acc[r][i]);
      if (lane == 0 && row < rows) out[i * rows + row] = s + (bias ? bf16_to_float(bias[row]) : 0.0f);
    }
  }
}

// Any shape and alignment (odd `in`, sliced tensors): a warp per row, one element per lane step.
__global__ void gemv_scalar_kernel(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                   const __nv_bfloat16* __restrict__ bias, float* __restrict__ out, int n,
                                   int64_t rows, int64_t in) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  float acc[kGemvMaxRows] = {};
  for (int64_t c = lane; c < in; c += 32) {
    const float wc = bf16_to_float(w[row * in + c]);
#pragma unroll
    for (int i = 0; i < kGemvMaxRows; i++)
      if (i < n) acc[i] += wc * x[i * in + c];
  }
#pragma unroll
  for (int i = 0; i < kGemvMaxRows; i++) {
    if (i >= n) break;
    const float s = warp_sum(acc[i]);
    if (lane == 0) out[i * rows + row] = s + (bias ? bf16_to_float(bias[row]) : 0.0f);
  }
}

template <int N>
void launch_vec(const float* x, const __nv_bfloat16* w, const __nv_bfloat16* bias, float* out, int64_t rows,
                int64_t in, cudaStream_t stream) {
  const int64_t rows_per_block = kWarps * kRowsPerWarp;
  gemv_vec_kernel<N><<<unsigned((rows + rows_per_block - 1) / rows_per_block), kWarps * 32, 0, stream>>>(
      x, w, bias, out, rows, in);
}

__global__ void add_bias_kernel(float* out, const __nv_bfloat16* __restrict__ bias, int64_t count, int64_t cols) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] += bf16_to_float(bias[i % cols]);
}

}  // namespace

cudaError_t gemv(const float* x, const __nv_bfloat16* w, const __nv_bfloat16* bias, float* out, int n,
                 int64_t out_features, int64_t in_features, cudaStream_t stream) {
  if (out_features == 0) return cudaSuccess;
  const bool aligned = in_features % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(w) % 16 == 0;
  if (!aligned) {
    gemv_scalar_kernel<<<unsigned((out_features + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(
        x, w, bias, out, n, out_features, in_features);
    return cudaGetLastError();
  }
  switch (n) {
    case 1: launch_vec<1>(x, w, bias, out, out_features, in_features, stream); break;
    case 2: launch_vec<2>(x, w, bias, out, out_features, in_features, stream); break;
    case 3: launch_vec<3>(x, w, bias, out, out_features, in_features, stream); break;
    case 4: launch_vec<4>(x, w, bias, out, out_features, in_features, stream); break;
    case 5: launch_vec<5>(x, w, bias, out, out_features, in_features, stream); break;
    case 6: launch_vec<6>(x, w, bias, out, out_features, in_features, stream); break;
    case 7: launch_vec<7>(x, w, bias, out, out_features, in_features, stream); break;
    case 8: launch_vec<8>(x, w, bias, out, out_features, in_features, stream); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t add_bias(float* out, const __nv_bfloat16* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t count = rows * cols;
  if (count == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = (count + threads - 1) / threads;
  add_bias_kernel<<<unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream>>>(out, bias, count, cols);
  return cudaGetLastError();
}

}  // namespace kvlab::kernels
