#pragma once
// Element types kvlab reads from checkpoints and computes in, with scalar conversions.
#include <cstdint>
#include <cstring>
#include <string>

namespace kvlab {

enum class DType : uint8_t { F32, F16, BF16, I32 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
// safetensors spelling ("F32", "F16", "BF16", "I32"); throws Error naming `where` otherwise.
DType dtype_from_safetensors(const std::string& s, const std::string& where);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of `src` (type t) to float.
void convert_to_f32(const void* src, DType t, size_t n, float* dst);

}  // namespace kvlab
