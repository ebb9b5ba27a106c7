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

}  // namespace kvlab::kernels
