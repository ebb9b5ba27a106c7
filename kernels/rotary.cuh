#pragma once
// The rotation of one RoPE pair (channel j with j + half, HF's rotate_half convention) from src
// into dst (which may be src), as HF computes it: an fp32 angle, and sincosf (not __sinf)
// because angles reach 1e5 radians. Device code: include from kernels/*.cu only.
#include <cstdint>

namespace kvlab::kernels {

__device__ __forceinline__ void rotate_pair(const float* src, float* dst, int j, int half, int32_t position,
                                            float inv_freq, float attention_scaling) {
  float s, c;
  sincosf(float(position) * inv_freq, &s, &c);
  c *= attention_scaling;
  s *= attention_scaling;
  const float a = src[j], b = src[j + half];
  dst[j] = a * c - b * s;
  dst[j + half] = b * c + a * s;
}

// Channels [c, c + 8) of rotate_pair's result over the row x (c a multiple of 8, half too), from
// those channels and their partners: each thread of a chunked loop computes its own chunk.
__device__ __forceinline__ void rotate_chunk8(const float* x, int c, int half, int32_t position,
                                              const float* inv_freq, float attention_scaling, float (&out)[8]) {
  const bool first = c < half;
  const int pair = first ? c : c - half;  // the pairs' index j, as rotate_pair's
  const float* own = x + c;
  const float* partner = x + (first ? c + half : c - half);
#pragma unroll
  for (int i = 0; i < 8; i++) {
    float s, co;
    sincosf(float(position) * inv_freq[pair + i], &s, &co);
    co *= attention_scaling;
    s *= attention_scaling;
    out[i] = first ? own[i] * co - partner[i] * s : own[i] * co + partner[i] * s;
  }
}

}  // namespace kvlab::kernels
