#include "rmsnorm.cuh"

#include <algorithm>

#include "device_common.cuh"
#include "elementwise.cuh"
#include "launch.cuh"
#include "rmsnorm_row.cuh"

namespace kvlab::kernels {
namespace {

// One block per row, any cols.
template <typename Out>
__global__ void rmsnorm_kernel(const float* x, const __nv_bfloat16* __restrict__ weight, float eps, Out* out,
                               int cols) {
  enter_dependent_part();
  const int64_t row = int64_t(blockIdx.x) * cols;
  rmsnorm_row(x + row, weight, eps, out + row, cols);
}

// A row of a prefill chunk (cols a multiple of 4, at most kHeldThreads * 4 * kMostHeld): each
// thread holds its share as kHeld float4s, so x is read once, and blocks of 256 let several rows
// stream per SM where a block of cols / 4 threads let 2 (17 µs for 1,024 x 4,096 on an H100).
constexpr int kHeldThreads = 256;
constexpr int kMostHeld = 8;

template <typename Out, int kHeld>
__global__ void __launch_bounds__(kHeldThreads) rmsnorm_held_kernel(const float* x,
                                                                    const __nv_bfloat16* __restrict__ weight,
                                                                    float eps, Out* out, int cols) {
  enter_dependent_part();
  const int64_t row = int64_t(blockIdx.x) * cols;
  float v[kHeld][4];
  float sum_sq = 0.0f;
#pragma unroll
  for (int i = 0; i < kHeld; i++) {
    const int c = (threadIdx.x + i * kHeldThreads) * 4;
    if (c < cols) {
      load<4>(x + row + c, v[i]);
#pragma unroll
      for (int e = 0; e < 4; e++) sum_sq += v[i][e] * v[i][e];
    }
  }
  const float inv = 1.0f / sqrtf(block_sum(sum_sq) / float(cols) + eps);
#pragma unroll
  for (int i = 0; i < kHeld; i++) {
    const int c = (threadIdx.x + i * kHeldThreads) * 4;
    if (c >= cols) break;
    float w[4];
    load<4>(weight + c, w);
#pragma unroll
    for (int e = 0; e < 4; e++) v[i][e] *= inv * w[e];
    store<4>(out + row + c, v[i]);
  }
}

int threads_for(int cols) { return std::min(1024, std::max(32, (cols / 4 + 31) / 32 * 32)); }

template <typename Out>
cudaError_t run(const float* x, const __nv_bfloat16* weight, float eps, Out* out, int64_t rows, int cols,
                cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (cols % 4 == 0 && cols <= kHeldThreads * 4 * kMostHeld && aligned_for_four(x, sizeof(float)) &&
      aligned_for_four(out, sizeof(Out)) && aligned_for_four(weight, sizeof(__nv_bfloat16))) {
    const auto kernel =
        cols <= kHeldThreads * 4 * 4 ? rmsnorm_held_kernel<Out, 4> : rmsnorm_held_kernel<Out, kMostHeld>;
    return launch(kernel, unsigned(rows), kHeldThreads, 0, stream, x, weight, eps, out, cols);
  }
  return launch(rmsnorm_kernel<Out>, unsigned(rows), threads_for(cols), 0, stream, x, weight, eps, out, cols);
}

}  // namespace

cudaError_t rmsnorm(const float* x, const __nv_bfloat16* weight, float eps, float* out, int64_t rows, int cols,
                    cudaStream_t stream) {
  return run(x, weight, eps, out, rows, cols, stream);
}
cudaError_t rmsnorm(const float* x, const __nv_bfloat16* weight, float eps, __nv_bfloat16* out, int64_t rows,
                    int cols, cudaStream_t stream) {
  return run(x, weight, eps, out, rows, cols, stream);
}

}  // namespace kvlab::kernels
