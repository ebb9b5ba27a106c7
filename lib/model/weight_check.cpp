#include "model/weight_check.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "model/safetensors.h"

namespace kvlab {

namespace {

// In every IEEE format a value is NaN or infinite exactly when all its exponent bits are set,
// so one mask-and-compare per element finds both; the sign and mantissa do not matter.
template <class Word>
bool non_finite(Word w, Word exponent) {
  return Word(w & exponent) == exponent;
}

// Index of the first non-finite element of `n` little-endian words at `p` (any alignment: the
// format does not align tensor data), or nullopt. Blocks keep the hot loop branch-free so the
// compiler vectorizes it; only a block with a hit is scanned again for the index.
template <class Word>
std::optional<size_t> first_non_finite(const unsigned char* p, size_t n, Word exponent) {
  constexpr size_t kBlock = size_t(1) << 14;
  for (size_t begin = 0; begin < n; begin += kBlock) {
    const size_t end = std::min(n, begin + kBlock);
    unsigned hits = 0;
    for (size_t i = begin; i < end; i++) {
      Word w;
      std::memcpy(&w, p + i * sizeof(Word), sizeof(Word));
      hits |= unsigned(non_finite(w, exponent));
    }
    if (!hits) continue;
    for (size_t i = begin; i < end; i++) {
      Word w;
      std::memcpy(&w, p + i * sizeof(Word), sizeof(Word));
      if (non_finite(w, exponent)) return i;
    }
  }
  return std::nullopt;
}

// "NaN", "+Inf" or "-Inf" for the element at `p` of type `t`.
std::string describe(const unsigned char* p, DType t) {
  float f = 0;
  if (t == DType::F32) {
    std::memcpy(&f, p, 4);
  } else {
    uint16_t h;
    std::memcpy(&h, p, 2);
    f = t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
  if (f != f) return "NaN";
  return f > 0 ? "+Inf" : "-Inf";
}

}  // namespace

void check_weight_values(const TensorRecord& t) {
  const std::string where = t.file + ": tensor \"" + t.name + "\"";
  const auto* p = static_cast<const unsigned char*>(t.data);
  const size_t n = size_t(t.numel());
  std::optional<size_t> bad;
  switch (t.dtype) {
    case DType::F32: bad = first_non_finite<uint32_t>(p, n, 0x7f800000u); break;
    case DType::BF16: bad = first_non_finite<uint16_t>(p, n, 0x7f80u); break;
    case DType::F16: bad = first_non_finite<uint16_t>(p, n, 0x7c00u); break;
    case DType::I32: fail(where + " has dtype I32; weights must be F32, F16 or BF16");
  }
  if (bad)
    fail(where + " holds " + describe(p + *bad * dtype_size(t.dtype), t.dtype) + " at element " +
         std::to_string(*bad) + " of " + std::to_string(n) + " (shape " + t.shape_string() +
         "); a checkpoint's weights must be finite");
}

}  // namespace kvlab
