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

// Channel c of rotate_pair's result over the row x, from channel c and its partner: for a
// thread that computes some channels of a row (or gathers a few) while others do the rest.
__device__ __forceinline__ float rotated_channel(const float* x, int c, int half, int32_t position,
                                                 const float* inv_freq, float attention_scaling) {
  const bool first = c < half;
  const int j = first ? c : c - half;  // the pair, as rotate_pair's j
  float s, co;
  sincosf(float(position) * inv_freq[j], &s, &co);
  co *= attention_scaling;
  s *= attention_scaling;
  return first ? x[c] * co - x[c + half] * s : x[c] * co + x[j] * s;
}

}  // namespace kvlab::kernels
