#pragma once
// The matmul family: out[n, o] = x[n, i] · w[o, i]^T (+ bias) with bf16 weights, fp32
// activations. Small n streams the weights through a GEMV here; larger n goes to cuBLAS
// (called by the backend) after convert_f32_to_bf16, and add_bias is its epilogue.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

constexpr int kGemvMaxRows = 8;  // largest n the GEMV takes

// n in [1, kGemvMaxRows]; bias may be null. x [n, in], w [out_features, in], out [n, out_features].
cudaError_t gemv(const float* x, const __nv_bfloat16* w, const __nv_bfloat16* bias, float* out, int n,
                 int64_t out_features, int64_t in_features, cudaStream_t stream);

// out[r, c] += bias[c] over out [rows, cols].
cudaError_t add_bias(float* out, const __nv_bfloat16* bias, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace kvlab::kernels
