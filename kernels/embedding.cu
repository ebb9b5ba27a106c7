#include "embedding.cuh"

#include "device_common.cuh"
#include "launch.cuh"

namespace kvlab::kernels {
namespace {

__global__ void embedding_kernel(const __nv_bfloat16* __restrict__ table, int64_t vocab, int hidden,
                                 const int32_t* __restrict__ ids, float* __restrict__ out, int32_t* bad_id) {
  enter_dependent_part();
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  if (id < 0 || id >= vocab) {
    if (threadIdx.x == 0) {
      volatile int32_t* e = bad_id;
      e[1] = id;
      e[2] = int32_t(vocab);
      e[0] = 1;
    }
    return;
  }
  const __nv_bfloat16* src = table + int64_t(id) * hidden;
  for (int c = threadIdx.x; c < hidden; c += blockDim.x) out[i * hidden + c] = bf16_to_float(src[c]);
}

}  // namespace

cudaError_t embedding(const __nv_bfloat16* table, int64_t vocab, int hidden, const int32_t* ids, int64_t n,
                      float* out, int32_t* bad_id, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return launch(embedding_kernel, unsigned(n), 256, 0, stream, table, vocab, hidden, ids, out, bad_id);
}

}  // namespace kvlab::kernels
