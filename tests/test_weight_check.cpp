// The load-time scan for non-finite weights: every float dtype, any alignment, hits in the
// first, last and a later block's element, and the values that are finite however extreme.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "model/safetensors.h"
#include "model/weight_check.h"

namespace kvlab {
namespace {

// A tensor of `n` elements of `t` whose raw words are `fill`, stored one byte past an aligned
// address (safetensors does not align data), with element `at` set to `bad`.
struct Fixture {
  std::vector<unsigned char> storage;
  TensorRecord record;

  Fixture(DType t, size_t n, uint32_t fill) {
    const size_t w = dtype_size(t);
    storage.assign(n * w + 1, 0);
    for (size_t i = 0; i < n; i++) std::memcpy(storage.data() + 1 + i * w, &fill, w);
    record.name = "model.layers.0.mlp.up_proj.weight";
    record.file = "/m/model.safetensors";
    record.dtype = t;
    record.shape = {int64_t(n)};
    record.data = storage.data() + 1;
    record.bytes = n * w;
  }
  void set(size_t at, uint32_t word) { std::memcpy(storage.data() + 1 + at * dtype_size(record.dtype), &word, dtype_size(record.dtype)); }
};

std::string check_error(const TensorRecord& t) {
  try {
    check_weight_values(t);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitBadInput);
    return e.what();
  }
  return "";
}

struct Format {
  DType dtype;
  uint32_t one, nan, pos_inf, neg_inf, max_finite, min_subnormal, neg_zero;
};
const Format kFormats[] = {
    {DType::F32, 0x3f800000u, 0x7fc00000u, 0x7f800000u, 0xff800000u, 0x7f7fffffu, 0x00000001u, 0x80000000u},
    {DType::BF16, 0x3f80u, 0x7fc0u, 0x7f80u, 0xff80u, 0x7f7fu, 0x0001u, 0x8000u},
    {DType::F16, 0x3c00u, 0x7e00u, 0x7c00u, 0xfc00u, 0x7bffu, 0x0001u, 0x8000u},
};

TEST(WeightCheck, FiniteExtremesPass) {
  for (const Format& f : kFormats) {
    Fixture x(f.dtype, 1000, f.one);
    x.set(1, f.max_finite);
    x.set(2, f.max_finite | (f.dtype == DType::F32 ? 0x80000000u : 0x8000u));
    x.set(3, f.min_subnormal);
    x.set(4, f.neg_zero);
    EXPECT_EQ(check_error(x.record), "") << dtype_name(f.dtype);
  }
}

TEST(WeightCheck, EveryNonFiniteIsFoundWhereverItIs) {
  const size_t n = 3 * 16384 + 5;  // past the scan's block size, with a ragged tail
  for (const Format& f : kFormats) {
    for (size_t at : {size_t(0), size_t(16383), size_t(16384), size_t(2 * 16384 + 7), n - 1}) {
      for (auto [word, name] : {std::pair{f.nan, "NaN"}, {f.pos_inf, "+Inf"}, {f.neg_inf, "-Inf"}}) {
        Fixture x(f.dtype, n, f.one);
        x.set(at, word);
        const std::string err = check_error(x.record);
        EXPECT_NE(err.find(std::string("holds ") + name + " at element " + std::to_string(at) + " of "), std::string::npos)
            << dtype_name(f.dtype) << " " << err;
        EXPECT_NE(err.find("/m/model.safetensors: tensor \"model.layers.0.mlp.up_proj.weight\""), std::string::npos) << err;
      }
    }
  }
}

TEST(WeightCheck, FirstOfSeveralIsReported) {
  Fixture x(DType::BF16, 100, 0x3f80u);
  x.set(70, 0x7f80u);
  x.set(40, 0xffc0u);
  EXPECT_NE(check_error(x.record).find("NaN at element 40"), std::string::npos);
}

TEST(WeightCheck, IntegerWeightsAreRefused) {
  Fixture x(DType::I32, 10, 7);
  EXPECT_NE(check_error(x.record).find("has dtype I32"), std::string::npos);
}

TEST(WeightCheck, EmptyTensorPasses) {
  Fixture x(DType::BF16, 0, 0);
  EXPECT_EQ(check_error(x.record), "");
}

// Not a pass/fail figure (sanitizer builds are far slower): what the scan costs per byte.
TEST(WeightCheck, Throughput) {
  Fixture x(DType::BF16, size_t(64) << 20, 0x3f80u);  // 128 MiB
  check_weight_values(x.record);  // fault the pages in
  auto t0 = std::chrono::steady_clock::now();
  check_weight_values(x.record);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("weight check: %.2f GB/s over 128 MiB of BF16 (one thread)\n", double(x.record.bytes) / s / 1e9);
}

}  // namespace
}  // namespace kvlab
