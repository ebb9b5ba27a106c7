#pragma once
// Helpers of the GPU tests that hold the CUDA backend to the CPU backend (the fp32 oracle):
// one pair of backends per test binary, random inputs that are never zeros, values that a
// bf16 copy holds exactly, and the relative error ||got - want|| / ||want||.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/error.h"
#ifdef KVLAB_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace kvlab::gpu_testing {

// Why the CUDA tests cannot run here; empty when they can.
inline std::string no_device_reason() {
  if (!cuda_compiled()) return "kvlab was built without KVLAB_CUDA";
#ifdef KVLAB_CUDA
  if (cuda_device_count() == 0) return cuda_unavailable_reason();
#endif
  return "";
}

inline std::mt19937& rng() {
  static std::mt19937 r(20251124);
  return r;
}

inline std::vector<float> random_floats(size_t n, float scale = 1.0f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng());
  return v;
}

// The same values rounded to the nearest bf16, so that a bf16 copy holds them exactly.
inline std::vector<float> bf16_exact(std::vector<float> v) {
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
  return v;
}

// Plain RoPE frequencies theta^(-2i / head_dim), i < head_dim / 2 (no scaling).
inline std::vector<float> inv_freq(int head_dim, double theta) {
  std::vector<float> f(size_t(head_dim / 2));
  for (int i = 0; i < head_dim / 2; i++) f[size_t(i)] = 1.0f / std::pow(float(theta), float(2 * i) / float(head_dim));
  return f;
}

// Infinite for a size mismatch or any non-finite value (an unwritten, NaN-poisoned element).
inline double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double m = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = std::fabs(double(a[i]) - b[i]);
    if (!(d <= m)) m = std::isfinite(d) ? d : std::numeric_limits<double>::infinity();
  }
  return m;
}

// A CUDA backend and a CPU backend shared by every test of the binary; tests skip, saying
// why, when no device is there.
class BackendPair : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (gpu_ || !no_device_reason().empty()) return;
    gpu_ = make_backend(BackendKind::CUDA).release();
    cpu_ = make_backend(BackendKind::CPU).release();
  }
  void SetUp() override {
    const std::string reason = no_device_reason();
    if (!reason.empty()) GTEST_SKIP() << "no CUDA device: " << reason;
  }
  static Backend& cpu() { return *cpu_; }
  static Backend& gpu() { return *gpu_; }

  static inline Backend* cpu_ = nullptr;
  static inline Backend* gpu_ = nullptr;
};

}  // namespace kvlab::gpu_testing
