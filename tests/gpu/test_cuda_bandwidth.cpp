// How close the CUDA backend's memory-bound ops come to the device's bandwidth, measured in one
// process against a device-to-device copy (bytes read + written), and a loose floor so that a
// regression to a slow path fails. Prints a Markdown table (scripts/gpu_check.sh runs it).
//
// Inputs are rotated over several copies so that no timed call finds its data in the 50 MB L2.
// Timing is host wall-clock around many queued calls after a warm-up, synchronised at the end:
// each call is tens of microseconds, so the launch queue stays ahead of the GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#ifdef KVLAB_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_backend.h"
#endif

namespace kvlab {
namespace {

#ifdef KVLAB_CUDA

struct Row {
  std::string what;
  double bytes;      // moved per call (the least an implementation must move)
  double seconds;    // per call
  double copy_gbs;   // reference bandwidth
};

std::vector<Row>& rows() {
  static std::vector<Row> r;
  return r;
}

class Report : public ::testing::Environment {
 public:
  void TearDown() override {
    if (rows().empty()) return;
    std::printf("\n| op | bytes/call | us/call | GB/s | %% of copy |\n| --- | --- | --- | --- | --- |\n");
    for (const Row& r : rows())
      std::printf("| %s | %.1f MB | %.1f | %.0f | %.0f%% |\n", r.what.c_str(), r.bytes / 1e6, r.seconds * 1e6,
                  r.bytes / r.seconds / 1e9, 100.0 * r.bytes / r.seconds / 1e9 / r.copy_gbs);
  }
};
const auto* const kReport = ::testing::AddGlobalTestEnvironment(new Report);

// Median over `repeats` timings of `iters` calls each.
double seconds_per_call(Backend& b, const std::function<void(int)>& call, int iters = 50, int repeats = 5) {
  for (int i = 0; i < 5; i++) call(i);
  b.synchronize();
  std::vector<double> t;
  for (int r = 0; r < repeats; r++) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; i++) call(i);
    b.synchronize();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Device-to-device copy of 1 GiB, counting bytes read plus written, GB/s.
double copy_bandwidth() {
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0.0;
  cudaMemset(a, 1, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  std::vector<float> ms;
  for (int r = 0; r < 5; r++) {
    cudaEventRecord(e0);
    for (int i = 0; i < 10; i++) cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    ms.push_back(t / 10);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  std::sort(ms.begin(), ms.end());
  return 2.0 * double(bytes) / (ms[ms.size() / 2] * 1e-3) / 1e9;
}

class CudaBandwidth : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda_unavailable_reason();
    if (!backend_) {
      backend_ = make_backend(BackendKind::CUDA);
      copy_gbs_ = copy_bandwidth();
      std::printf("device-to-device copy: %.0f GB/s\n", copy_gbs_);
    }
  }
  static Backend& b() { return *backend_; }
  static Tensor random_activation(const std::vector<int64_t>& shape) {
    Tensor t = b().alloc(shape, DType::F32);
    std::vector<float> v(size_t(t.numel()));
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (float& x : v) x = d(rng);
    b().write(t, v.data(), v.size() * 4);
    return t;
  }
  static Tensor random_weight(int64_t rows, int64_t cols) {
    std::vector<uint16_t> v(size_t(rows * cols));
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> d(-0.05f, 0.05f);
    for (uint16_t& x : v) x = f32_to_bf16(d(rng));
    return b().upload_weight(v.data(), DType::BF16, {rows, cols});
  }
  static void record(const std::string& what, double bytes, double seconds) {
    rows().push_back({what, bytes, seconds, copy_gbs_});
  }

  static std::unique_ptr<Backend> backend_;
  static double copy_gbs_;
};
std::unique_ptr<Backend> CudaBandwidth::backend_;
double CudaBandwidth::copy_gbs_ = 0.0;

TEST_F(CudaBandwidth, GemvStreamsWeights) {
  struct Case {
    int64_t out, in;
    int n;
  };
  for (const Case& c : {Case{14336, 4096, 1}, Case{4096, 14336, 1}, Case{152064, 3584, 1}, Case{4096, 14336, 4},
                        Case{18944, 3584, 8}}) {
    const int copies = c.out * c.in * 2 > (int64_t(200) << 20) ? 1 : 4;
    std::vector<Tensor> w;
    for (int i = 0; i < copies; i++) w.push_back(random_weight(c.out, c.in));
    Tensor x = random_activation({c.n, c.in});
    Tensor out = b().alloc({c.n, c.out}, DType::F32);
    const double s = seconds_per_call(b(), [&](int i) { b().matmul(x, w[size_t(i % copies)], nullptr, out); });
    const double bytes = double(c.out * c.in * 2);
    record("gemv n=" + std::to_string(c.n) + " " + std::to_string(c.out) + "x" + std::to_string(c.in) + " bf16",
           bytes, s);
    // Floors well under what was measured (bench/notes/cuda_backend.md), to catch a slow path.
    EXPECT_GT(bytes / s / 1e9, (c.n == 1 ? 0.75 : 0.4) * copy_gbs_) << "GEMV " << c.out << "x" << c.in;
  }
}

TEST_F(CudaBandwidth, DecodeAttention) {
  for (auto [q_heads, kv_heads, context] : {std::tuple{32, 8, 32768}, {28, 4, 32768}, {32, 8, 4096}}) {
    const int hd = 128, layers = 2;  // two layers alternate, so one layer's K/V is not in L2
    KVCache cache = b().alloc_kv_cache(layers, kv_heads, hd, context);
    Tensor kv = random_activation({2048, int64_t(kv_heads) * hd});
    std::vector<int32_t> p(2048);
    Tensor pos = b().alloc({2048}, DType::I32);
    for (int l = 0; l < layers; l++) {
      for (int done = 0; done < context; done += 2048) {
        for (int i = 0; i < 2048; i++) p[size_t(i)] = done + i;
        b().write(pos, p.data(), p.size() * 4);
        b().kv_append(cache, l, kv, kv, pos);
      }
    }
    Tensor q = random_activation({1, int64_t(q_heads) * hd});
    Tensor out = b().alloc({1, int64_t(q_heads) * hd}, DType::F32);
    const float scale = 1.0f / std::sqrt(float(hd));
    const double s = seconds_per_call(b(), [&](int i) { b().attention(q, cache, i % layers, scale, out); }, 100);
    const double bytes = 2.0 * kv_heads * double(context) * hd * 2;
    record("decode attention " + std::to_string(q_heads) + "/" + std::to_string(kv_heads) + " heads, ctx " +
               std::to_string(context),
           bytes, s);
    if (context >= 32768) EXPECT_GT(bytes / s / 1e9, 0.5 * copy_gbs_);
  }
}

// Compute-bound paths, for the record (TFLOP/s in the table's GB/s column is not meaningful,
// so these print their own line).
TEST_F(CudaBandwidth, PrefillThroughput) {
  {
    const int64_t n = 512, in = 4096, outf = 14336;
    Tensor w = random_weight(outf, in);
    Tensor x = random_activation({n, in});
    Tensor out = b().alloc({n, outf}, DType::F32);
    const double s = seconds_per_call(b(), [&](int) { b().matmul(x, w, nullptr, out); }, 20);
    std::printf("prefill matmul %ldx%ldx%ld: %.1f us, %.0f TFLOP/s\n", long(n), long(in), long(outf), s * 1e6,
                2.0 * n * in * outf / s / 1e12);
  }
  {
    const int q_heads = 32, kv_heads = 8, hd = 128, prefix = 3584, n = 512;
    KVCache cache = b().alloc_kv_cache(1, kv_heads, hd, prefix + n);
    Tensor kv = random_activation({n, int64_t(kv_heads) * hd});
    Tensor pos = b().alloc({n}, DType::I32);
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (int done = 0; done < prefix + n; done += n) {
      for (int i = 0; i < n; i++) p[size_t(i)] = done + i;
      b().write(pos, p.data(), p.size() * 4);
      b().kv_append(cache, 0, kv, kv, pos);
    }
    Tensor q = random_activation({n, int64_t(q_heads) * hd});
    Tensor out = b().alloc({n, int64_t(q_heads) * hd}, DType::F32);
    const double s = seconds_per_call(b(), [&](int) { b().attention(q, cache, 0, 0.088f, out); }, 20);
    // Each query i attends to prefix + i + 1 keys: QK^T and PV, 2 flops per multiply-add.
    const double flops = 4.0 * q_heads * hd * (double(n) * prefix + double(n) * (n + 1) / 2);
    std::printf("prefill attention 32/8 heads, %d new after %d: %.1f us, %.0f TFLOP/s\n", n, prefix, s * 1e6,
                flops / s / 1e12);
  }
}

#else

TEST(CudaBandwidth, NeedsCuda) { GTEST_SKIP() << "no CUDA device: kvlab was built without KVLAB_CUDA"; }

#endif

}  // namespace
}  // namespace kvlab
