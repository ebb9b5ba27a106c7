#include "rmsnorm.cuh"

#include <algorithm>

#include "device_common.cuh"
#include "launch.cuh"
#include "rmsnorm_row.cuh"

namespace kvlab::kernels {
namespace {

// One block per row.
template <typename Out>
__global__ void rmsnorm_kernel(const float* x, const __nv_bfloat16* __restrict__ weight, float eps, Out* out,
                               int cols) {
  enter_dependent_part();
  const int64_t row = int64_t(blockIdx.x) * cols;
  rmsnorm_row(x + row, weight, eps, out + row, cols);
}

int threads_for(int cols) { return std::min(1024, std::max(32, (cols / 4 + 31) / 32 * 32)); }

template <typename Out>
cudaError_t run(const float* x, const __nv_bfloat16* weight, float eps, Out* out, int64_t rows, int cols,
                cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
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
