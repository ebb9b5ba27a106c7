#pragma once
// The rotation of RoPE pairs (channel j with j + half, HF's rotate_half convention), as HF
// computes it: an fp32 angle, and sincosf (not __sinf) because angles reach 1e5 radians.
// Device code: include from kernels/*.cu only.
#include <cstdint>

namespace kvlab::kernels {

// a (channel j) and b (channel j + half) rotated in place by position * inv_freq.
__device__ __forceinline__ void rotate(float& a, float& b, int32_t position, float inv_freq,
                                       float attention_scaling) {
  float s, c;
  sincosf(float(position) * inv_freq, &s, &c);
  c *= attention_scaling;
  s *= attention_scaling;
  const float x = a, y = b;
  a = x * c - y * s;
  b = y * c + x * s;
}

// Pair j of the head at src rotated into dst (which may be src).
__device__ __forceinline__ void rotate_pair(const float* src, float* dst, int j, int half, int32_t position,
                                            float inv_freq, float attention_scaling) {
  float a = src[j], b = src[j + half];
  rotate(a, b, position, inv_freq, attention_scaling);
  dst[j] = a;
  dst[j + half] = b;
}

}  // namespace kvlab::kernels
