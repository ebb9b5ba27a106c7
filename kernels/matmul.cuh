#pragma once
// The matmul family: out[n, o] = x[n, i] · w[o, i]^T (+ bias) with bf16 weights, fp32
// activations. Small n streams the weights through a GEMV here; larger n goes to cuBLAS
// (called by the backend) after convert_f32_to_bf16, and add_bias is its epilogue.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvlab::kernels {

constexpr int kGemvMaxRows = 8;     // largest n the GEMV takes
constexpr int kGemvMaxWeights = 3;  // weights that share one input in one launch (q, k and v)

// What a weight's GEMV does with its rows besides storing them (see GemvRopeAppend).
enum class GemvEpilogue : uint8_t {
  kStore,             // out, as computed
  kRotate,            // out, rotated by RoPE (q)
  kRotateAppendKey,   // out and the cache's keys, rotated; the positions with them (k)
  kAppendValue,       // the cache's values only: out is left unwritten (v)
};

// One weight of a GEMV: out [n, rows] = x [n, in] · w [rows, in]^T + bias (bias may be null), or
// with accumulate out += it (the residual join; kStore only).
struct GemvWeight {
  const __nv_bfloat16* w;
  const __nv_bfloat16* bias;
  float* out;
  int64_t rows;
  bool accumulate;
  GemvEpilogue epilogue = GemvEpilogue::kStore;
};

// A decode step's rope and KV append done by its q/k/v GEMV as it stores (the epilogues above),
// which saves their launch: a warp of a rotated weight takes rows j and j + head_dim / 2 of one
// head, the pair RoPE rotates together (HF's rotate_half), and token i's key and value rows of
// KV head h go to cache slot length[h] + i. The lengths are left as they are: the attention
// that follows reads those slots as pending and advances them (AttentionArgs::pending).
struct GemvRopeAppend {
  int head_dim = 0;
  const int32_t* rope_positions = nullptr;  // [n]: token i is rotated by rope_positions[i]
  const float* inv_freq = nullptr;          // [head_dim / 2]
  float attention_scaling = 1.0f;
  const int32_t* positions = nullptr;       // [n]: stored with token i's key
  __nv_bfloat16* cache_k = nullptr;         // this layer: [kv_heads, capacity, head_dim]
  __nv_bfloat16* cache_v = nullptr;
  int32_t* cache_position = nullptr;        // this layer: [kv_heads, capacity]
  const int32_t* length = nullptr;          // this layer: [kv_heads]
  int capacity = 0;
};

// RMSNorm folded into the GEMV: x is taken as x / rms(x) * weight. Each warp reads all of x
// anyway, so it sums the squares on the way and scales its dot products at the end; the
// separate norm launch and its round trip through memory go. weight null: x as it is.
struct GemvNorm {
  const __nv_bfloat16* weight;
  float eps;
};

// n in [1, kGemvMaxRows], count in [1, kGemvMaxWeights]: every weight times the same x in one
// launch, so short projections (k, v) ride with a long one and pay no launch of their own.
// Weights must never be written by kernels: the GEMV starts reading them before the kernel
// before it has finished (kernels/launch.cuh). An out may not alias x. sm_count (the device's
// SMs) bounds how many warps may share a row: as many as still fit on the GPU at once.
// Weights with an epilogue other than kStore need rope_append and the vectorized kernel
// (gemv_vectorizes).
cudaError_t gemv(const float* x, const GemvNorm& norm, const GemvWeight* weights, int count, int n, int64_t in,
                 int sm_count, cudaStream_t stream, const GemvRopeAppend* rope_append = nullptr);
// Whether gemv takes its vectorized kernel for these operands: in % 8 == 0 and 16-byte alignment.
bool gemv_vectorizes(const float* x, const GemvNorm& norm, const GemvWeight* weights, int count, int64_t in);

// out [n, rows] = silu(x · gate^T) * (x · up^T): SwiGLU's two projections and their product in
// one pass; a warp reads the same row of both.
cudaError_t gemv_swiglu(const float* x, const GemvNorm& norm, const __nv_bfloat16* gate, const __nv_bfloat16* up,
                        float* out, int n, int64_t rows, int64_t in, int sm_count, cudaStream_t stream);

// out[r, c] += bias[c] over out [rows, cols].
cudaError_t add_bias(float* out, const __nv_bfloat16* bias, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace kvlab::kernels
