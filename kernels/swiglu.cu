#include "swiglu.cuh"

#include "elementwise.cuh"

namespace kvlab::kernels {
namespace {

template <typename In, typename Out>
struct Swiglu {
  const In* gate;
  const In* up;
  Out* out;
  template <int kWidth>
  __device__ void apply(int64_t i) const {
    float g[kWidth], u[kWidth];
    load<kWidth>(gate + i, g);
    load<kWidth>(up + i, u);
#pragma unroll
    for (int j = 0; j < kWidth; j++) g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    store<kWidth>(out + i, g);
  }
};

template <typename In, typename Out>
cudaError_t run(const In* gate, const In* up, Out* out, int64_t count, cudaStream_t stream) {
  const int in = int(sizeof(In)), o = int(sizeof(Out));
  return launch_elementwise(Swiglu<In, Out>{gate, up, out}, count, {{gate, in}, {up, in}, {out, o}}, stream);
}

}  // namespace

cudaError_t swiglu(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream) {
  return run(gate, up, out, count, stream);
}
cudaError_t swiglu(const __nv_bfloat16* gate, const __nv_bfloat16* up, float* out, int64_t count,
                   cudaStream_t stream) {
  return run(gate, up, out, count, stream);
}
cudaError_t swiglu(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* out, int64_t count,
                   cudaStream_t stream) {
  return run(gate, up, out, count, stream);
}

}  // namespace kvlab::kernels
