#include "convert.cuh"

#include "elementwise.cuh"

namespace kvlab::kernels {
namespace {

struct ToBf16 {
  const float* src;
  __nv_bfloat16* dst;
  template <int kWidth>
  __device__ void apply(int64_t i) const {
    float f[kWidth];
    load<kWidth>(src + i, f);
    store<kWidth>(dst + i, f);
  }
};

}  // namespace

cudaError_t convert_f32_to_bf16(const float* src, __nv_bfloat16* dst, int64_t count, cudaStream_t stream) {
  return launch_elementwise(ToBf16{src, dst}, count, {{src, 4}, {dst, 2}}, stream);
}

}  // namespace kvlab::kernels
