// Every Backend op on the CUDA backend against the CPU backend (the fp32 oracle), over
// awkward shapes: the pattern of llama.cpp's test-backend-ops.
//
// Each check draws fresh random inputs (never zeros), poisons the output with NaN first (so an
// unwritten element fails), and compares by relative error ||cuda - cpu|| / ||cpu||.
// Weights and KV are drawn already representable in bf16, so both backends start from identical
// values and the error left is the CUDA path's own rounding:
//   kExact  1e-5  fp32 on both sides, only the order of operations differs (~1e-7 seen);
//   kBf16x  4e-3  one rounding of an operand to bf16 (the prefill GEMM input): 2^-9 at most per
//                 element, ~1.1e-3 RMS, which averages to ~1e-3 over a dot product;
//   kBf16x3 8e-3  up to three bf16 roundings in a row (the prefill MLP: its input, then gate and
//                 up, then their SwiGLU product, which down reads): ~2.5e-3 RMS expected;
//   kBf16p  1e-2  the prefill attention, which rounds q and the softmax weights to bf16.
// An indexing or masking bug moves whole rows and gives errors near 1, far above these.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend_pair.h"
#include "core/error.h"

namespace kvlab {
namespace {

using gpu_testing::bf16_exact;
using gpu_testing::inv_freq;
using gpu_testing::random_floats;
using gpu_testing::rel_error;
using gpu_testing::rng;

constexpr double kExact = 1e-5;
constexpr double kBf16x = 4e-3;
constexpr double kBf16x3 = 8e-3;
constexpr double kBf16p = 1e-2;
// The split-K attention path (n <= 8 queries) keeps q and the softmax weights at ~fp32
// precision (as bf16 high + low pairs on tensor cores, or fp32 on the fallback), so with
// identical bf16 K/V it matches the CPU closely, which makes long-context checks sharp.
constexpr double kDecodeAttention = 2e-4;

// Largest error seen per op, printed at the end so a run's log shows the margins.
std::map<std::string, double>& worst() {
  static std::map<std::string, double> m;
  return m;
}
class ErrorReport : public ::testing::Environment {
 public:
  void TearDown() override {
    if (worst().empty()) return;
    std::printf("\n| op | max relative error |\n| --- | --- |\n");
    for (const auto& [op, err] : worst()) std::printf("| %s | %.3g |\n", op.c_str(), err);
  }
};
const auto* const kReport = ::testing::AddGlobalTestEnvironment(new ErrorReport);

// The same tensor on both backends.
struct Both {
  Tensor cpu, gpu;
};

// One pair of backends for every suite of this file (CudaAttention derives from CudaOps).
class CudaOps : public gpu_testing::BackendPair {
 protected:
  // An activation tensor holding `v` (in each backend's activation dtype).
  static Tensor put(Backend& b, const std::vector<float>& v, const std::vector<int64_t>& shape) {
    Tensor t = b.alloc(shape, b.activation_dtype());
    KVLAB_ASSERT(size_t(t.numel()) == v.size());
    if (t.dtype == DType::F32) {
      b.write(t, v.data(), v.size() * 4);
    } else {
      KVLAB_ASSERT(t.dtype == DType::BF16);
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); i++) h[i] = f32_to_bf16(v[i]);
      b.write(t, h.data(), h.size() * 2);
    }
    return t;
  }
  static Both acts(const std::vector<float>& v, const std::vector<int64_t>& shape) {
    return {put(cpu(), v, shape), put(gpu(), v, shape)};
  }
  static Both weights(const std::vector<float>& v, const std::vector<int64_t>& shape) {
    return {cpu().upload_weight(v.data(), DType::F32, shape), gpu().upload_weight(v.data(), DType::F32, shape)};
  }
  // Weights as consecutive row slices of one allocation on each backend, in the order given, as
  // load_weights stacks q, k, v (and gate, up): the layout a backend may take as one matmul.
  // cols 0: vectors (biases).
  static std::vector<Both> stacked_weights(const std::vector<std::vector<float>>& parts, int64_t cols) {
    int64_t rows = 0;
    for (const auto& p : parts) rows += int64_t(p.size()) / std::max<int64_t>(cols, 1);
    std::vector<Both> out(parts.size());
    for (Tensor Both::*side : {&Both::cpu, &Both::gpu}) {
      Backend& b = side == &Both::cpu ? cpu() : gpu();
      const Tensor all = b.alloc(cols ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows},
                                 b.weight_dtype(DType::F32));
      int64_t row = 0;
      for (size_t i = 0; i < parts.size(); i++) {
        const int64_t part_rows = int64_t(parts[i].size()) / std::max<int64_t>(cols, 1);
        out[i].*side = all.slice(row, part_rows);
        b.upload_weight_into(out[i].*side, parts[i].data(), DType::F32);
        row += part_rows;
      }
    }
    return out;
  }
  static Both ints(const std::vector<int32_t>& v, const std::vector<int64_t>& shape) {
    Both t{cpu().alloc(shape, DType::I32), gpu().alloc(shape, DType::I32)};
    cpu().write(t.cpu, v.data(), v.size() * 4);
    gpu().write(t.gpu, v.data(), v.size() * 4);
    return t;
  }
  static Both f32(const std::vector<float>& v, const std::vector<int64_t>& shape) {
    Both t{cpu().alloc(shape, DType::F32), gpu().alloc(shape, DType::F32)};
    cpu().write(t.cpu, v.data(), v.size() * 4);
    gpu().write(t.gpu, v.data(), v.size() * 4);
    return t;
  }
  // The MLP's scratch gate_out, up_out and act [n, inter] in each backend's mlp_scratch_dtype;
  // adjacent: up_out right after gate_out in one allocation, as the transformer's workspace has
  // them (a backend may then run gate and up as one batched product).
  static std::vector<Both> mlp_scratch(int64_t n, int64_t inter, bool adjacent) {
    std::vector<Both> out(3);
    for (Tensor Both::*side : {&Both::cpu, &Both::gpu}) {
      Backend& b = side == &Both::cpu ? cpu() : gpu();
      const DType dt = b.mlp_scratch_dtype();
      if (adjacent) {
        const Tensor gate_up = b.alloc({2 * n, inter}, dt);
        out[0].*side = gate_up.slice(0, n);
        out[1].*side = gate_up.slice(n, n);
      } else {
        out[0].*side = b.alloc({n, inter}, dt);
        out[1].*side = b.alloc({n, inter}, dt);
      }
      out[2].*side = b.alloc({n, inter}, dt);
    }
    return out;
  }
  // An activation output filled with NaN, so that any element the op fails to write shows.
  static Both poisoned(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return acts(std::vector<float>(size_t(n), std::numeric_limits<float>::quiet_NaN()), shape);
  }

  static void expect_close(const std::string& op, const Tensor& got, const Tensor& want, double tol,
                           const std::string& what) {
    const double err = rel_error(gpu().to_host_f32(got), cpu().to_host_f32(want));
    double& w = worst()[op];
    w = std::max(w, err);
    EXPECT_LE(err, tol) << op << " " << what;
  }
  static void expect_close(const std::string& op, const Both& t, double tol, const std::string& what) {
    expect_close(op, t.gpu, t.cpu, tol, what);
  }
};

std::string shape_name(std::initializer_list<int64_t> dims) {
  std::string s;
  for (int64_t d : dims) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

TEST_F(CudaOps, DescribesItself) {
  EXPECT_EQ(gpu().device(), Device::CUDA);
  EXPECT_NE(gpu().description().find("cuda"), std::string::npos) << gpu().description();
  EXPECT_GT(gpu().free_memory(), size_t(1) << 30);
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    float one = 1.0f;
    uint16_t one16 = d == DType::F16 ? f32_to_f16(1.0f) : f32_to_bf16(1.0f);
    const void* src = d == DType::F32 ? static_cast<const void*>(&one) : &one16;
    Tensor t = gpu().upload_weight(src, d, {1});
    EXPECT_EQ(t.dtype, gpu().weight_dtype(d));
    EXPECT_EQ(gpu().to_host_f32(t)[0], 1.0f);
  }
  std::printf("%s\n", gpu().description().c_str());
}

TEST_F(CudaOps, AllocationFailureIsNoMemory) {
  try {
    gpu().alloc({int64_t(1) << 48}, DType::F32);
    FAIL() << "a 1 PiB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitNoMemory);
    EXPECT_NE(std::string(e.what()).find("bytes"), std::string::npos) << e.what();
  }
  // The backend is still usable afterwards.
  Both x = acts(random_floats(64), {64});
  Both out = poisoned({64});
  cpu().swiglu(x.cpu, x.cpu, out.cpu);
  gpu().swiglu(x.gpu, x.gpu, out.gpu);
  expect_close("swiglu", out, kExact, "after a failed allocation");
}

TEST_F(CudaOps, UploadWeightRoundsToBf16) {
  for (DType stored : {DType::F32, DType::F16, DType::BF16}) {
    const std::vector<float> v = random_floats(1001, 3.0f);
    std::vector<uint16_t> h16(v.size());
    std::vector<float> want(v.size());
    for (size_t i = 0; i < v.size(); i++) {
      h16[i] = stored == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      const float as_stored =
          stored == DType::F32 ? v[i] : stored == DType::F16 ? f16_to_f32(h16[i]) : bf16_to_f32(h16[i]);
      want[i] = gpu().weight_dtype(stored) == DType::BF16 ? bf16_to_f32(f32_to_bf16(as_stored)) : as_stored;
    }
    const void* src = stored == DType::F32 ? static_cast<const void*>(v.data()) : h16.data();
    Tensor t = gpu().upload_weight(src, stored, {7, 143});
    EXPECT_EQ(gpu().to_host_f32(t), want) << dtype_name(stored);
  }
}

TEST_F(CudaOps, Embedding) {
  for (auto [vocab, hidden, n] : {std::tuple{1000, 4096, 1}, {1000, 4096, 300}, {37, 17, 7}, {5, 3584, 9}}) {
    Both table = weights(bf16_exact(random_floats(size_t(vocab) * hidden)), {vocab, hidden});
    std::uniform_int_distribution<int32_t> id(0, vocab - 1);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int32_t& i : ids) i = id(rng());
    ids.front() = vocab - 1;  // the last row too
    Both idt = ints(ids, {n});
    Both out = poisoned({n, hidden});
    cpu().embedding(table.cpu, idt.cpu, out.cpu);
    gpu().embedding(table.gpu, idt.gpu, out.gpu);
    expect_close("embedding", out, 0.0, shape_name({vocab, hidden, n}));
  }
}

TEST_F(CudaOps, EmbeddingRejectsIdOutsideVocabulary) {
  Both table = weights(bf16_exact(random_floats(10 * 64)), {10, 64});
  for (int32_t bad : {10, -1}) {
    Both idt = ints({3, bad, 4}, {3});
    Both out = poisoned({3, 64});
    try {
      gpu().embedding(table.gpu, idt.gpu, out.gpu);
      gpu().synchronize();
      FAIL() << "id " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
    }
  }
  // A good lookup afterwards works and raises nothing.
  Both idt = ints({3, 9, 0}, {3});
  Both out = poisoned({3, 64});
  cpu().embedding(table.cpu, idt.cpu, out.cpu);
  gpu().embedding(table.gpu, idt.gpu, out.gpu);
  expect_close("embedding", out, 0.0, "after a bad id");
}

TEST_F(CudaOps, RmsNorm) {
  for (auto [rows, cols] : {std::pair{1, 4096}, {300, 3584}, {7, 17}, {5, 1}, {2, 5120}}) {
    Both x = acts(random_floats(size_t(rows) * cols, 2.0f), {rows, cols});
    Both w = weights(bf16_exact(random_floats(size_t(cols))), {cols});
    Both out = poisoned({rows, cols});
    cpu().rmsnorm(x.cpu, w.cpu, 1e-6f, out.cpu);
    gpu().rmsnorm(x.gpu, w.gpu, 1e-6f, out.gpu);
    expect_close("rmsnorm", out, kExact, shape_name({rows, cols}));
  }
}

// Qwen3's q/k norm: the [n, heads * head_dim] activation seen as [n * heads, head_dim], in place.
TEST_F(CudaOps, RmsNormPerHeadInPlace) {
  for (auto [n, heads, hd] : {std::tuple{3, 28, 128}, {1, 8, 64}, {300, 4, 128}}) {
    Both x = acts(random_floats(size_t(n) * heads * hd, 3.0f), {n, heads * hd});
    Both w = weights(bf16_exact(random_floats(size_t(hd))), {hd});
    Tensor xc = x.cpu.reshape({int64_t(n) * heads, hd}), xg = x.gpu.reshape({int64_t(n) * heads, hd});
    cpu().rmsnorm(xc, w.cpu, 1e-6f, xc);
    gpu().rmsnorm(xg, w.gpu, 1e-6f, xg);
    expect_close("rmsnorm", x, kExact, "in place " + shape_name({n, heads, hd}));
  }
}

TEST_F(CudaOps, Matmul) {
  struct Case {
    int n, in, out;
    bool bias;
  };
  // n <= 8 takes the GEMV (fp32 input, exact up to order); larger n cuBLAS on a bf16 copy of x.
  // in % 8 != 0 takes the GEMV's unaligned path.
  const Case cases[] = {{1, 4096, 14336, false}, {1, 14336, 4096, true}, {3, 5, 3, true},  {1, 17, 1, false},
                        {8, 3584, 512, true},    {2, 4100, 33, true},    {5, 8, 7, false}, {9, 3584, 640, true},
                        {300, 4096, 1024, false}, {17, 1, 17, true},     {64, 896, 4864, true}};
  for (const Case& c : cases) {
    Both x = acts(random_floats(size_t(c.n) * c.in), {c.n, c.in});
    Both w = weights(bf16_exact(random_floats(size_t(c.out) * c.in)), {c.out, c.in});
    Both b = weights(bf16_exact(random_floats(size_t(c.out))), {c.out});
    Both out = poisoned({c.n, c.out});
    cpu().matmul(x.cpu, w.cpu, c.bias ? &b.cpu : nullptr, out.cpu);
    gpu().matmul(x.gpu, w.gpu, c.bias ? &b.gpu : nullptr, out.gpu);
    expect_close(c.n <= 8 ? "matmul (gemv)" : "matmul (cublas)", out, c.n <= 8 ? kExact : kBf16x,
                 shape_name({c.n, c.in, c.out}) + (c.bias ? " +bias" : ""));
  }
}

TEST_F(CudaOps, MatmulOnLastRowSlice) {
  // lm_head on the last row only: the input is a slice that starts mid-allocation.
  Both x = acts(random_floats(5 * 3584), {5, 3584});
  Both w = weights(bf16_exact(random_floats(2000 * 3584)), {2000, 3584});
  Both out = poisoned({1, 2000});
  cpu().matmul(x.cpu.slice(4, 1), w.cpu, nullptr, out.cpu);
  gpu().matmul(x.gpu.slice(4, 1), w.gpu, nullptr, out.gpu);
  expect_close("matmul (gemv)", out, kExact, "last-row slice");
}

// q, k and v of one input: one GEMV launch for n <= 8, where each weight owns a run of blocks;
// odd row counts end a weight inside a block's rows, in % 8 != 0 takes the scalar path, and
// n > 8 converts x once for a cuBLAS GEMM per weight. With a norm, the GEMV folds RMSNorm into
// its dot products (cuBLAS: the norm apart); with accumulate it adds into a live residual
// stream. x is produced by an rmsnorm just before, so the GEMV's early weight loads and its
// wait for x are exercised as in the model.
TEST_F(CudaOps, MatmulsOfOneInput) {
  struct Case {
    int n, in;
    std::vector<int> rows;
    bool bias, norm, accumulate;
  };
  const Case cases[] = {{1, 4096, {4096, 1024, 1024}, false, true, false},
                        {1, 3584, {3584, 512, 512}, true, true, false},
                        {1, 4096, {4096}, false, false, true},
                        {1, 14336, {4096}, false, true, true},
                        {2, 64, {41, 7, 25}, true, false, false},
                        {2, 64, {41, 7, 25}, true, true, true},
                        {4, 72, {17, 3, 1}, false, true, false},
                        {3, 17, {5, 9, 2}, true, false, false},
                        {3, 17, {5, 9, 2}, true, true, true},
                        {8, 896, {896, 128}, false, true, true},
                        {8, 896, {896, 128}, false, false, false},
                        {12, 896, {896, 128, 128}, true, true, false},
                        {12, 896, {896}, false, false, true}};
  for (const Case& c : cases) {
    Both raw = acts(random_floats(size_t(c.n) * c.in, 2.0f), {c.n, c.in});
    Both pre = weights(bf16_exact(random_floats(size_t(c.in))), {c.in});
    Both norm = weights(bf16_exact(random_floats(size_t(c.in))), {c.in});
    Both x = poisoned({c.n, c.in}), normed = poisoned({c.n, c.in});
    cpu().rmsnorm(raw.cpu, pre.cpu, 1e-5f, x.cpu);
    gpu().rmsnorm(raw.gpu, pre.gpu, 1e-5f, x.gpu);
    std::vector<Both> w, b, out;
    for (int rows : c.rows) {
      w.push_back(weights(bf16_exact(random_floats(size_t(rows) * c.in)), {rows, c.in}));
      b.push_back(weights(bf16_exact(random_floats(size_t(rows))), {rows}));
      out.push_back(c.accumulate ? acts(random_floats(size_t(c.n) * rows, 3.0f), {c.n, rows}) : poisoned({c.n, rows}));
    }
    auto run = [&](Backend& be, Tensor Both::*side) {
      auto p = [&](size_t j) {
        return Backend::Projection{&(w[j].*side), c.bias ? &(b[j].*side) : nullptr, &(out[j].*side), c.accumulate};
      };
      const Backend::InputNorm in = c.norm ? Backend::InputNorm{&(norm.*side), 1e-5f, &(normed.*side)}
                                           : Backend::InputNorm{};
      if (c.rows.size() == 3) {
        be.matmuls(x.*side, {p(0), p(1), p(2)}, in);
      } else if (c.rows.size() == 2) {
        be.matmuls(x.*side, {p(0), p(1)}, in);
      } else {
        be.matmuls(x.*side, {p(0)}, in);
      }
    };
    run(cpu(), &Both::cpu);
    run(gpu(), &Both::gpu);
    for (size_t j = 0; j < c.rows.size(); j++)
      expect_close(c.n <= 8 ? "matmuls (gemv)" : "matmuls (cublas)", out[j], c.n <= 8 ? kExact : kBf16x,
                   shape_name({c.n, c.in, c.rows[j]}) + " weight " + std::to_string(j) + (c.bias ? " +bias" : "") +
                       (c.norm ? " norm" : "") + (c.accumulate ? " accumulate" : ""));
  }
}

// silu(x · gate^T) * (x · up^T): the gated GEMV for every n it takes (a warp per row reading
// the same row of gate and up; 129 rows leave a block partly idle), with and without the norm
// folded in, the scalar path for in % 8 != 0, and above n = 8 cuBLAS GEMMs into bf16 gate and
// up, then swiglu.
TEST_F(CudaOps, MatmulSwiglu) {
  std::vector<std::tuple<int, int, int, bool>> cases = {
      {1, 4096, 14336, false}, {1, 4096, 14336, true}, {2, 17, 33, false},
      {2, 17, 33, true},       {12, 896, 4864, false}, {12, 896, 4864, true}};
  for (int n = 1; n <= 8; n++) cases.emplace_back(n, 128, 129, n % 2 == 0);
  for (auto [n, in, rows, with_norm] : cases) {
    Both x = acts(random_floats(size_t(n) * in), {n, in});
    Both norm = weights(bf16_exact(random_floats(size_t(in))), {in});
    Both gate = weights(bf16_exact(random_floats(size_t(rows) * in)), {rows, in});
    Both up = weights(bf16_exact(random_floats(size_t(rows) * in)), {rows, in});
    std::vector<Both> scratch = mlp_scratch(n, rows, false);
    Both &gate_out = scratch[0], &up_out = scratch[1], out = poisoned({n, rows});
    Both normed = poisoned({n, in});
    auto in_norm = [&, with_norm = with_norm](Tensor Both::*side) {
      return with_norm ? Backend::InputNorm{&(norm.*side), 1e-6f, &(normed.*side)} : Backend::InputNorm{};
    };
    cpu().matmul_swiglu(x.cpu, gate.cpu, up.cpu, gate_out.cpu, up_out.cpu, out.cpu, in_norm(&Both::cpu));
    gpu().matmul_swiglu(x.gpu, gate.gpu, up.gpu, gate_out.gpu, up_out.gpu, out.gpu, in_norm(&Both::gpu));
    expect_close(n <= 8 ? "matmul_swiglu (gemv)" : "matmul_swiglu (cublas)", out, n <= 8 ? kExact : kBf16x3,
                 shape_name({n, in, rows}) + (with_norm ? " norm" : ""));
  }
}

// A layer's MLP added into x: the GEMV ops up to n = 8, above it bf16 gate, up and SwiGLU
// product through cuBLAS (one GEMM when gate and up are stacked, as load_weights has them, and
// their scratch adjacent, as the transformer's workspace has it),
// with the norm written straight into the GEMM input. Odd sizes take the elementwise kernels'
// one-at-a-time path.
TEST_F(CudaOps, Mlp) {
  for (auto [n, in, inter, stack] :
       {std::tuple{1, 4096, 14336, true}, {8, 128, 129, false}, {9, 128, 129, false}, {9, 128, 129, true},
        {33, 896, 4864, false}, {33, 896, 4864, true}, {512, 256, 1024, true}, {13, 96, 77, true}}) {
    Both x = acts(random_floats(size_t(n) * in), {n, in});
    Both norm = weights(bf16_exact(random_floats(size_t(in))), {in});
    const std::vector<float> gate_w = bf16_exact(random_floats(size_t(inter) * in));
    const std::vector<float> up_w = bf16_exact(random_floats(size_t(inter) * in));
    const std::vector<Both> gate_up = stack ? stacked_weights({gate_w, up_w}, in)
                                            : std::vector<Both>{weights(gate_w, {inter, in}), weights(up_w, {inter, in})};
    const Both &gate = gate_up[0], &up = gate_up[1];
    Both down = weights(bf16_exact(random_floats(size_t(in) * inter)), {in, inter});
    std::vector<Both> scratch = mlp_scratch(n, inter, stack);
    Both &gate_out = scratch[0], &up_out = scratch[1], &act = scratch[2];
    Both normed = poisoned({n, in});
    cpu().mlp(x.cpu, gate.cpu, up.cpu, down.cpu, gate_out.cpu, up_out.cpu, act.cpu, {&norm.cpu, 1e-6f, &normed.cpu});
    gpu().mlp(x.gpu, gate.gpu, up.gpu, down.gpu, gate_out.gpu, up_out.gpu, act.gpu, {&norm.gpu, 1e-6f, &normed.gpu});
    expect_close(n <= 8 ? "mlp (gemv)" : "mlp (cublas)", x, n <= 8 ? kExact : kBf16x3,
                 shape_name({n, in, inter}) + (stack ? " stacked" : ""));
  }
}

TEST_F(CudaOps, Rope) {
  for (auto [n, heads, hd, theta, scaling] :
       {std::tuple{1, 28, 128, 1e6, 1.0f}, {5, 4, 128, 5e5, 1.0f}, {300, 14, 64, 1e4, 1.0f}, {3, 2, 96, 1e6, 0.8f}}) {
    Both x = acts(random_floats(size_t(n) * heads * hd, 2.0f), {n, heads * hd});
    std::uniform_int_distribution<int32_t> pos(0, 131071);  // far positions: large fp32 angles
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (int32_t& v : p) v = pos(rng());
    Both positions = ints(p, {n});
    Both f = f32(inv_freq(hd, theta), {hd / 2});
    RopeTable rc{f.cpu, scaling}, rg{f.gpu, scaling};
    cpu().rope(x.cpu, positions.cpu, rc, hd);
    gpu().rope(x.gpu, positions.gpu, rg, hd);
    expect_close("rope", x, kExact, shape_name({n, heads, hd}));
  }
}

TEST_F(CudaOps, Swiglu) {
  for (int64_t count : {int64_t(1), int64_t(17), int64_t(3) * 18944}) {
    Both gate = acts(random_floats(size_t(count), 6.0f), {count});
    Both up = acts(random_floats(size_t(count), 2.0f), {count});
    Both out = poisoned({count});
    cpu().swiglu(gate.cpu, up.cpu, out.cpu);
    gpu().swiglu(gate.gpu, up.gpu, out.gpu);
    expect_close("swiglu", out, kExact, std::to_string(count));
  }
}

TEST_F(CudaOps, Argmax) {
  for (auto [rows, cols] : {std::pair{1, 152064}, {3, 17}, {2, 1}, {4, 128256}, {2, 4097}}) {
    std::vector<float> v = random_floats(size_t(rows) * cols, 10.0f);
    if (cols > 2) {  // a tie in row 0: the first index must win
      const float top = *std::max_element(v.begin(), v.begin() + cols) + 1.0f;
      v[size_t(cols) / 3] = top;
      v[size_t(cols) / 2] = top;
    }
    Both logits = f32(v, {rows, cols});
    Both out = ints(std::vector<int32_t>(size_t(rows), -7), {rows});
    cpu().argmax(logits.cpu, out.cpu);
    gpu().argmax(logits.gpu, out.gpu);
    std::vector<int32_t> want(static_cast<size_t>(rows)), got(static_cast<size_t>(rows));
    cpu().read(out.cpu, want.data(), want.size() * 4);
    gpu().read(out.gpu, got.data(), got.size() * 4);
    EXPECT_EQ(got, want) << shape_name({rows, cols});
  }
}

// The same KV cache on both backends.
struct BothCache {
  KVCache cpu, gpu;
};

class CudaAttention : public CudaOps {
 protected:
  static BothCache new_cache(int layers, int kv_heads, int hd, int capacity) {
    return {cpu().alloc_kv_cache(layers, kv_heads, hd, capacity), gpu().alloc_kv_cache(layers, kv_heads, hd, capacity)};
  }
  // Appends n random tokens (bf16-exact, so both caches hold the same values) to `layer`.
  static void append(BothCache& c, int layer, int n, int first_position) {
    for (int done = 0; done < n;) {
      const int chunk = std::min(n - done, 2048);
      const int64_t row = int64_t(c.cpu.kv_heads) * c.cpu.head_dim;
      Both k = acts(bf16_exact(random_floats(size_t(chunk * row))), {chunk, row});
      Both v = acts(bf16_exact(random_floats(size_t(chunk * row))), {chunk, row});
      std::vector<int32_t> p(static_cast<size_t>(chunk));
      for (int i = 0; i < chunk; i++) p[size_t(i)] = first_position + done + i;
      Both pos = ints(p, {chunk});
      cpu().kv_append(c.cpu, layer, k.cpu, v.cpu, pos.cpu);
      gpu().kv_append(c.gpu, layer, k.gpu, v.gpu, pos.gpu);
      done += chunk;
    }
  }
  static std::vector<uint8_t> bytes_of(const Tensor& t) {
    std::vector<uint8_t> bytes(t.bytes());
    gpu().read(t, bytes.data(), bytes.size());
    return bytes;
  }
  // A second GPU cache holding what c holds, byte for byte.
  static KVCache gpu_copy(const KVCache& c) {
    KVCache copy = gpu().alloc_kv_cache(c.layers, c.kv_heads, c.head_dim, c.capacity);
    auto clone = [](const Tensor& from, Tensor& to) {
      const std::vector<uint8_t> bytes = bytes_of(from);
      gpu().write(to, bytes.data(), bytes.size());
    };
    for (int l = 0; l < c.layers; l++) {
      clone(c.k[size_t(l)], copy.k[size_t(l)]);
      clone(c.v[size_t(l)], copy.v[size_t(l)]);
    }
    clone(c.position, copy.position);
    clone(c.length, copy.length);
    copy.host_length = c.host_length;
    return copy;
  }
  // Head h's first `count` slots of a cache layer read to the host ([kv_heads, capacity, hd]).
  static std::vector<float> head_slots(const std::vector<float>& layer, int h, int capacity, int hd, int count) {
    const auto begin = layer.begin() + long(h) * capacity * hd;
    return std::vector<float>(begin, begin + long(count) * hd);
  }
  // Every head's first `count` slots of layer 1's K and V, cache `got` (on backend gb) against
  // `want` (on wb), of the same shape.
  static void expect_kv_close(Backend& gb, const KVCache& got, Backend& wb, const KVCache& want, int count, double tol,
                              const std::string& what) {
    const int capacity = want.capacity, hd = want.head_dim;
    for (const bool is_k : {true, false}) {
      const std::vector<float> g = gb.to_host_f32(is_k ? got.k[1] : got.v[1]);
      const std::vector<float> w = wb.to_host_f32(is_k ? want.k[1] : want.v[1]);
      for (int h = 0; h < want.kv_heads; h++)
        EXPECT_LE(rel_error(head_slots(g, h, capacity, hd, count), head_slots(w, h, capacity, hd, count)), tol)
            << what << (is_k ? " K" : " V") << " of head " << h;
    }
  }
  // The GPU's cache against the CPU's.
  static void expect_kv_close(const BothCache& c, int count, double tol, const std::string& what) {
    expect_kv_close(gpu(), c.gpu, cpu(), c.cpu, count, tol, what);
  }
  static std::vector<int32_t> lengths(const KVCache& c) {
    std::vector<int32_t> h(size_t(c.layers * c.kv_heads));
    (c.length.device == Device::CPU ? cpu() : gpu()).read(c.length, h.data(), h.size() * 4);
    return h;
  }
  static void set_lengths(BothCache& c, const std::vector<int32_t>& h) {
    cpu().write(c.cpu.length, h.data(), h.size() * 4);
    gpu().write(c.gpu.length, h.data(), h.size() * 4);
  }

  // `prefix` tokens in the cache (per head a random shorter length when ragged, as after a
  // cache policy evicted some), then n new tokens appended and attended. Layer 1 of two, so
  // the per-layer offsets are exercised; layer 0 holds other data.
  static void check(int q_heads, int kv_heads, int hd, int prefix, int n, bool ragged) {
    const int capacity = prefix + n + 3;
    BothCache c = new_cache(2, kv_heads, hd, capacity);
    append(c, 0, prefix + n, 0);
    append(c, 1, prefix, 0);
    if (ragged) {
      std::vector<int32_t> len = lengths(c.cpu);
      std::uniform_int_distribution<int32_t> keep(0, prefix);
      for (int h = 0; h < kv_heads; h++) len[size_t(kv_heads + h)] = keep(rng());
      len[size_t(kv_heads)] = prefix;  // one head keeps everything
      set_lengths(c, len);
    }
    c.gpu.host_length = lengths(c.gpu);  // as the transformer's mirror holds them before a chunk
    append(c, 1, n, prefix);
    // Queries scaled so the softmax is peaked: a wrong key then moves the output visibly. Not
    // bf16-exact: the split-K path carries q's low bits separately, and that must be exercised.
    Both q = acts(random_floats(size_t(n) * q_heads * hd, 3.0f), {n, q_heads * hd});
    Both out = poisoned({n, q_heads * hd});
    const float scale = 1.0f / std::sqrt(float(hd));
    cpu().attention(q.cpu, c.cpu, 1, scale, out.cpu);
    gpu().attention(q.gpu, c.gpu, 1, scale, out.gpu);
    const bool split_k = n <= 8;
    expect_close(split_k ? "attention (split-K)" : "attention (prefill)", out, split_k ? kDecodeAttention : kBf16p,
                 "q_heads " + std::to_string(q_heads) + " kv_heads " + std::to_string(kv_heads) + " head_dim " +
                     std::to_string(hd) + " prefix " + std::to_string(prefix) + " n " + std::to_string(n) +
                     (ragged ? " ragged" : ""));
  }
};

TEST_F(CudaAttention, KvAppend) {
  for (auto [kv_heads, hd] : {std::pair{4, 128}, {8, 64}, {2, 96}}) {
    BothCache c = new_cache(2, kv_heads, hd, 200);
    int pos = 0;
    for (int n : {3, 65, 1, 64}) {  // 65: five token blocks of 16, the last ragged
      append(c, 1, n, pos);
      pos += n;
    }
    append(c, 0, 5, 1000);
    EXPECT_EQ(lengths(c.gpu), lengths(c.cpu));
    const std::vector<int32_t> len = lengths(c.cpu);
    for (int layer = 0; layer < 2; layer++) {
      for (const auto* name : {"k", "v"}) {
        const Tensor& tc = name[0] == 'k' ? c.cpu.k[size_t(layer)] : c.cpu.v[size_t(layer)];
        const Tensor& tg = name[0] == 'k' ? c.gpu.k[size_t(layer)] : c.gpu.v[size_t(layer)];
        const std::vector<float> want = cpu().to_host_f32(tc), got = gpu().to_host_f32(tg);
        for (int h = 0; h < kv_heads; h++) {
          const size_t begin = size_t(h) * 200 * size_t(hd);
          const size_t end = begin + size_t(len[size_t(layer * kv_heads + h)]) * size_t(hd);
          EXPECT_TRUE(std::equal(got.begin() + long(begin), got.begin() + long(end), want.begin() + long(begin)))
              << name << " layer " << layer << " head " << h;
        }
      }
      std::vector<int32_t> pc(size_t(c.cpu.position.numel())), pg(pc.size());
      cpu().read(c.cpu.position, pc.data(), pc.size() * 4);
      gpu().read(c.gpu.position, pg.data(), pg.size() * 4);
      for (int h = 0; h < kv_heads; h++) {
        const size_t begin = (size_t(layer) * kv_heads + h) * 200;
        const size_t end = begin + size_t(len[size_t(layer * kv_heads + h)]);
        EXPECT_TRUE(std::equal(pg.begin() + long(begin), pg.begin() + long(end), pc.begin() + long(begin)))
            << "positions layer " << layer << " head " << h;
      }
    }
  }
}

// rope on q and k and the append of k and v, with and without Qwen3's q and k head norms before:
// a block per head for up to 8 tokens (a decode step), blocks of 16 tokens above that (9 tokens:
// one block; 37: three, the last ragged). After 5 cached tokens in layer 1 of 2, so slot and
// layer offsets show; positions far apart from the rope positions (as under a renumbering policy).
// head_dim 36 (not a multiple of 8) takes the kernel's one-pair-a-thread path, the others four.
TEST_F(CudaAttention, RopeKvAppend) {
  for (auto [q_heads, kv_heads, hd, n, normed] :
       {std::tuple{32, 8, 128, 1, false}, {28, 4, 128, 3, false}, {14, 2, 64, 8, false}, {6, 2, 64, 9, false},
        {28, 4, 128, 37, false}, {32, 8, 128, 1, true}, {14, 2, 64, 8, true}, {6, 2, 64, 9, true},
        {32, 8, 128, 37, true}, {6, 2, 36, 1, false}, {6, 2, 36, 37, false}, {6, 2, 36, 37, true}}) {
    const int capacity = 48, prefix = 5;
    BothCache c = new_cache(2, kv_heads, hd, capacity);
    append(c, 1, prefix, 0);
    Both q = acts(random_floats(size_t(n) * q_heads * hd, 2.0f), {n, int64_t(q_heads) * hd});
    Both k = acts(random_floats(size_t(n) * kv_heads * hd, 2.0f), {n, int64_t(kv_heads) * hd});
    Both v = acts(random_floats(size_t(n) * kv_heads * hd, 2.0f), {n, int64_t(kv_heads) * hd});
    std::vector<int32_t> rp(static_cast<size_t>(n)), p(static_cast<size_t>(n));
    for (int i = 0; i < n; i++) rp[size_t(i)] = prefix + i, p[size_t(i)] = 70000 + 3 * i;
    Both rope_pos = ints(rp, {n}), pos = ints(p, {n});
    Both f = f32(inv_freq(hd, 5e5), {hd / 2});
    RopeTable rc{f.cpu, 0.9f}, rg{f.gpu, 0.9f};
    Both q_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    Both k_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    const Backend::HeadNorms nc = normed ? Backend::HeadNorms{&q_norm.cpu, &k_norm.cpu, 1e-6f} : Backend::HeadNorms{};
    const Backend::HeadNorms ng = normed ? Backend::HeadNorms{&q_norm.gpu, &k_norm.gpu, 1e-6f} : Backend::HeadNorms{};
    cpu().rope_kv_append(q.cpu, k.cpu, v.cpu, rope_pos.cpu, rc, hd, c.cpu, 1, pos.cpu, nc);
    gpu().rope_kv_append(q.gpu, k.gpu, v.gpu, rope_pos.gpu, rg, hd, c.gpu, 1, pos.gpu, ng);
    const std::string what = shape_name({q_heads, kv_heads, hd, n}) + (normed ? " head-normed" : "");
    expect_close("rope_kv_append q", q, kExact, what);
    expect_close("rope_kv_append k", k, kExact, what);
    ASSERT_EQ(lengths(c.cpu), lengths(c.gpu)) << what;
    std::vector<int32_t> pc(size_t(2 * kv_heads * capacity)), pg(pc.size());
    cpu().read(c.cpu.position, pc.data(), pc.size() * 4);
    gpu().read(c.gpu.position, pg.data(), pg.size() * 4);
    for (int h = 0; h < kv_heads; h++) {
      const long slot0 = long(kv_heads + h) * capacity;  // layer 1, head h
      EXPECT_TRUE(std::equal(pc.begin() + slot0, pc.begin() + slot0 + prefix + n, pg.begin() + slot0))
          << what << " positions of head " << h;
    }
    expect_kv_close(c, prefix + n, kBf16x, what);  // the GPU stores K and V in bf16: one rounding
  }
}

// A layer's attention input: q, k and v projected from the normed x, then rope_kv_append. Above
// 8 tokens with stacked weights (and biases) the CUDA backend runs one GEMM into a stacked
// scratch and the rope/append kernel reads q, k and v from its rows; separate weights, or a
// decode step, take matmuls + rope_kv_append. q and k (rotated) and the cache are compared.
TEST_F(CudaAttention, AttentionInput) {
  for (auto [q_heads, kv_heads, hd, n, stack, bias, normed] :
       {std::tuple{8, 2, 128, 37, true, false, false}, {7, 1, 128, 37, true, true, false},
        {4, 2, 64, 9, true, true, true}, {8, 2, 128, 37, true, false, true}, {7, 1, 128, 37, false, true, false},
        {7, 1, 128, 1, true, true, false}}) {
    const int capacity = 48, prefix = 5, in = 256;
    const int64_t qd = int64_t(q_heads) * hd, kvd = int64_t(kv_heads) * hd;
    BothCache c = new_cache(2, kv_heads, hd, capacity);
    append(c, 1, prefix, 0);
    Both x = acts(random_floats(size_t(n) * in), {n, in});
    Both norm = weights(bf16_exact(random_floats(size_t(in))), {in});
    const std::vector<std::vector<float>> w = {bf16_exact(random_floats(size_t(qd * in))),
                                               bf16_exact(random_floats(size_t(kvd * in))),
                                               bf16_exact(random_floats(size_t(kvd * in)))};
    const std::vector<std::vector<float>> b = {bf16_exact(random_floats(size_t(qd))),
                                               bf16_exact(random_floats(size_t(kvd))),
                                               bf16_exact(random_floats(size_t(kvd)))};
    const std::vector<Both> wt = stack ? stacked_weights(w, in)
                                       : std::vector<Both>{weights(w[0], {qd, in}), weights(w[1], {kvd, in}),
                                                           weights(w[2], {kvd, in})};
    const std::vector<Both> bt = stacked_weights(b, 0);
    Both q = poisoned({n, qd}), k = poisoned({n, kvd}), v = poisoned({n, kvd}), normed_x = poisoned({n, in});
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (int i = 0; i < n; i++) p[size_t(i)] = prefix + 3 * i;
    Both pos = ints(p, {n});
    Both f = f32(inv_freq(hd, 5e5), {hd / 2});
    Both q_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    Both k_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    auto run = [&, hd = hd, bias = bias, normed = normed](Backend& be, Tensor Both::*side, KVCache& cache) {
      auto proj = [&](size_t j, Both& out) {
        return Backend::Projection{&(wt[j].*side), bias ? &(bt[j].*side) : nullptr, &(out.*side)};
      };
      const Backend::HeadNorms heads = normed ? Backend::HeadNorms{&(q_norm.*side), &(k_norm.*side), 1e-6f}
                                              : Backend::HeadNorms{};
      be.attention_input(x.*side, {&(norm.*side), 1e-6f, &(normed_x.*side)}, proj(0, q), proj(1, k), proj(2, v),
                         pos.*side, RopeTable{f.*side, 1.0f}, hd, cache, 1, pos.*side, heads, {});
    };
    run(cpu(), &Both::cpu, c.cpu);
    run(gpu(), &Both::gpu, c.gpu);
    const std::string what = shape_name({q_heads, kv_heads, hd, n}) + (stack ? " stacked" : "") +
                             (bias ? " +bias" : "") + (normed ? " head-normed" : "");
    // One GEMM over x rounded to bf16 (the GEMV: exact); the cache adds K's and V's rounding.
    const double tol = n <= 8 ? kExact : kBf16x;
    expect_close("attention_input q", q, tol, what);
    expect_close("attention_input k", k, tol, what);
    ASSERT_EQ(lengths(c.cpu), lengths(c.gpu)) << what;
    expect_kv_close(c, prefix + n, tol + kBf16x, what);
  }
}

// A decode step's attention input with its attention (Backend::Attend), two steps in a row of n
// tokens each. Where decode attention has a merge and no head norms are asked for, the CUDA
// backend's q/k/v GEMV rotates q and k and appends k and v past the lengths as it stores them,
// and the attention takes them as pending (kernels::GemvRopeAppend, AttentionArgs::pending).
// That path leaves v.out unwritten (the contract allows it), so the NaN left there shows which
// path ran. Checked against the CPU and against the same GPU ops run apart (attention_input,
// then attention) on a copy of the cache: the slot alone (prefix 0), 17 and 4097 cached tokens,
// Qwen2.5-7B's 28 / 4 heads with biases, head_dim 64, 3 and 8 tokens a step (a query's
// causal limit among the pending ones), a group of 16 (unpacked attention rows); head norms run
// apart.
TEST_F(CudaAttention, AttentionInputAttends) {
  for (auto [q_heads, kv_heads, hd, prefix, n, bias, normed, folded] :
       {std::tuple{32, 8, 128, 0, 1, false, false, true}, {32, 8, 128, 17, 1, false, false, true},
        {28, 4, 128, 4097, 1, true, false, true}, {14, 2, 64, 17, 1, true, false, true},
        {8, 8, 64, 4097, 1, false, false, true}, {32, 8, 128, 17, 3, false, false, true},
        {28, 4, 128, 4097, 8, true, false, true}, {32, 2, 128, 17, 1, false, false, true},
        {8, 2, 128, 17, 1, false, true, false}}) {
    const int capacity = prefix + 200, in = 256;
    const int64_t qd = int64_t(q_heads) * hd, kvd = int64_t(kv_heads) * hd;
    BothCache c = new_cache(2, kv_heads, hd, capacity);
    append(c, 1, prefix, 0);
    KVCache apart = gpu_copy(c.gpu);
    Both norm = weights(bf16_exact(random_floats(size_t(in))), {in});
    // Weights of a model's scale (0.1 over 256 inputs): q and k of order 1, so that a score
    // moves by about what an operand's rounding moves it.
    const std::vector<Both> wt = stacked_weights({bf16_exact(random_floats(size_t(qd * in), 0.1f)),
                                                  bf16_exact(random_floats(size_t(kvd * in), 0.1f)),
                                                  bf16_exact(random_floats(size_t(kvd * in), 0.1f))},
                                                 in);
    const std::vector<Both> bt = stacked_weights({bf16_exact(random_floats(size_t(qd))),
                                                  bf16_exact(random_floats(size_t(kvd))),
                                                  bf16_exact(random_floats(size_t(kvd)))},
                                                 0);
    Both f = f32(inv_freq(hd, 5e5), {hd / 2});
    Both q_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    Both k_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    const float scale = 1.0f / std::sqrt(float(hd));
    for (int step = 0; step < 2; step++) {
      const std::string what = shape_name({q_heads, kv_heads, hd, prefix, n}) + (bias ? " +bias" : "") +
                               (normed ? " head-normed" : "") + " step " + std::to_string(step);
      const int first = prefix + step * n;  // the step's first slot and position
      std::vector<int32_t> positions(static_cast<size_t>(n)), rope_positions(positions.size());
      for (int i = 0; i < n; i++) positions[size_t(i)] = first + i, rope_positions[size_t(i)] = 3 * (first + i) + 1;
      Both x = acts(random_floats(size_t(n * in)), {n, in});
      Both q = poisoned({n, qd}), k = poisoned({n, kvd}), v = poisoned({n, kvd}), normed_x = poisoned({n, in});
      Both out = poisoned({n, qd});
      Both apart_q = poisoned({n, qd}), apart_k = poisoned({n, kvd}), apart_v = poisoned({n, kvd});
      Both apart_out = poisoned({n, qd});
      Both pos = ints(positions, {n}), rope_pos = ints(rope_positions, {n});
      auto run = [&, hd = hd, bias = bias, normed = normed](Tensor Both::*side, KVCache& cache, Both& qo, Both& ko,
                                                           Both& vo, Both& o, bool fold) {
        Backend& be = side == &Both::cpu ? cpu() : gpu();
        auto proj = [&](size_t j, Both& t) {
          return Backend::Projection{&(wt[j].*side), bias ? &(bt[j].*side) : nullptr, &(t.*side)};
        };
        const Backend::HeadNorms heads = normed ? Backend::HeadNorms{&(q_norm.*side), &(k_norm.*side), 1e-6f}
                                                : Backend::HeadNorms{};
        be.attention_input(x.*side, {&(norm.*side), 1e-6f, &(normed_x.*side)}, proj(0, qo), proj(1, ko), proj(2, vo),
                           rope_pos.*side, RopeTable{f.*side, 1.0f}, hd, cache, 1, pos.*side, heads,
                           {scale, fold ? &(o.*side) : nullptr});
        if (!fold) be.attention(qo.*side, cache, 1, scale, o.*side);
      };
      run(&Both::gpu, apart, apart_q, apart_k, apart_v, apart_out, false);
      run(&Both::cpu, c.cpu, q, k, v, out, true);
      run(&Both::gpu, c.gpu, q, k, v, out, true);
      const std::vector<float> v_gpu = gpu().to_host_f32(v.gpu);
      EXPECT_EQ(std::isnan(v_gpu[0]), folded) << what << ": v.out " << (folded ? "unwritten" : "written");
      expect_close("attention_input q", q, kExact, what);
      expect_close("attention_input k", k, kExact, what);
      // The new tokens' k and v are rounded to bf16 from fp32 values whose last bits differ
      // between the backends (their sums' order), so one rounding may fall either way: kBf16x.
      expect_close("attention (appending)", out, kBf16x, what);
      // Against the same GPU ops apart: q and k as fp32 (the same rotation in another kernel); the
      // output over keys that a rounding of the new one may flip (rarely): kBf16x.
      for (const auto& [name, folded_t, apart_t, tol] : {std::tuple{"q", &q, &apart_q, kExact},
                                                         {"k", &k, &apart_k, kExact},
                                                         {"attention", &out, &apart_out, kBf16x}})
        EXPECT_LE(rel_error(gpu().to_host_f32(folded_t->gpu), gpu().to_host_f32(apart_t->gpu)), tol)
            << what << ": " << name << " appending against apart";
      const std::vector<int32_t> len = lengths(c.cpu);
      ASSERT_EQ(lengths(c.gpu), len) << what;
      ASSERT_EQ(lengths(apart), len) << what;
      EXPECT_EQ(bytes_of(c.gpu.position), bytes_of(apart.position)) << what;
      std::vector<int32_t> pc(size_t(c.cpu.position.numel())), pg(pc.size());
      cpu().read(c.cpu.position, pc.data(), pc.size() * 4);
      gpu().read(c.gpu.position, pg.data(), pg.size() * 4);
      std::vector<float> gpu_kv[2], cpu_kv[2], apart_kv[2];  // layer 1's V ([0]) and K ([1]) on each
      for (const bool is_k : {false, true}) {
        gpu_kv[is_k] = gpu().to_host_f32(is_k ? c.gpu.k[1] : c.gpu.v[1]);
        cpu_kv[is_k] = cpu().to_host_f32(is_k ? c.cpu.k[1] : c.cpu.v[1]);
        apart_kv[is_k] = gpu().to_host_f32(is_k ? apart.k[1] : apart.v[1]);
      }
      for (int h = 0; h < kv_heads; h++) {
        const int kept = len[size_t(kv_heads + h)];
        EXPECT_EQ(kept, first + n) << what;
        for (int i = 0; i < n; i++) {
          const size_t slot = size_t(long(kv_heads + h) * capacity + first + i);
          EXPECT_EQ(pg[slot], pc[slot]) << what << " position of head " << h << " token " << i;
        }
        for (const bool is_k : {true, false}) {
          const std::vector<float> got = head_slots(gpu_kv[is_k], h, capacity, hd, kept);
          EXPECT_LE(rel_error(got, head_slots(cpu_kv[is_k], h, capacity, hd, kept)), kBf16x)
              << what << (is_k ? " K" : " V") << " of head " << h;
          EXPECT_LE(rel_error(got, head_slots(apart_kv[is_k], h, capacity, hd, kept)), kBf16x)
              << what << (is_k ? " K" : " V") << " of head " << h << " appending against apart";
        }
      }
    }
  }
}

// A prefill chunk's whole attention block: attention_input with Attend's o, so that the
// residual gets the attention's output through o. Where the prefill kernel runs, the stacked
// weights are given and no head norms are asked for, the CUDA backend keeps q and the attention
// output in bf16 (in q.out's and out's bytes) and the o GEMM reads them as they are; the same
// roundings happen on the path apart (attention_input, attention, then the o matmul), so the two
// agree to fp32's last bits, unless the q/k/v GEMM's output is bf16 too (no biases): one more
// rounding of q, k and v. Checked against the CPU and against that path on a copy of the cache:
// Llama-3.1-8B's 32 / 8 heads, Qwen2.5-7B's 28 / 4 with biases, head_dim 64, a chunk of 9 (the
// smallest the prefill kernel takes) and 300 after 0, 17 and 4,097 cached tokens; head norms and
// separate weights take the fp32 path.
TEST_F(CudaAttention, AttentionBlockPrefill) {
  for (auto [q_heads, kv_heads, hd, prefix, n, bias, normed, stack] :
       {std::tuple{32, 8, 128, 0, 300, false, false, true}, {32, 8, 128, 4097, 300, false, false, true},
        {28, 4, 128, 17, 300, true, false, true}, {14, 2, 64, 17, 9, true, false, true},
        {8, 2, 128, 17, 37, false, true, true}, {7, 1, 128, 17, 37, false, false, false}}) {
    const int capacity = prefix + n + 5, in = 256;
    const int64_t qd = int64_t(q_heads) * hd, kvd = int64_t(kv_heads) * hd;
    BothCache c = new_cache(2, kv_heads, hd, capacity);
    append(c, 1, prefix, 0);
    KVCache apart = gpu_copy(c.gpu);
    Both norm = weights(bf16_exact(random_floats(size_t(in))), {in});
    const std::vector<std::vector<float>> w = {bf16_exact(random_floats(size_t(qd * in), 0.1f)),
                                               bf16_exact(random_floats(size_t(kvd * in), 0.1f)),
                                               bf16_exact(random_floats(size_t(kvd * in), 0.1f))};
    const std::vector<Both> wt = stack ? stacked_weights(w, in)
                                       : std::vector<Both>{weights(w[0], {qd, in}), weights(w[1], {kvd, in}),
                                                           weights(w[2], {kvd, in})};
    const std::vector<Both> bt = stacked_weights({bf16_exact(random_floats(size_t(qd))),
                                                  bf16_exact(random_floats(size_t(kvd))),
                                                  bf16_exact(random_floats(size_t(kvd)))},
                                                 0);
    Both o = weights(bf16_exact(random_floats(size_t(in * qd), 0.1f)), {in, qd});
    Both f = f32(inv_freq(hd, 5e5), {hd / 2});
    Both q_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    Both k_norm = weights(bf16_exact(random_floats(size_t(hd), 1.5f)), {hd});
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (int i = 0; i < n; i++) p[size_t(i)] = prefix + i;
    Both pos = ints(p, {n});
    Both x = acts(random_floats(size_t(n * in)), {n, in});
    const std::vector<float> zeros(size_t(n * in), 0.0f);
    Both into = acts(zeros, {n, in}), apart_into = acts(zeros, {n, in});
    const float scale = 1.0f / std::sqrt(float(hd));
    auto run = [&, n = n, hd = hd, bias = bias, normed = normed](Tensor Both::*side, KVCache& cache,
                                                                Both& residual, bool block) {
      Backend& be = side == &Both::cpu ? cpu() : gpu();
      Both q = poisoned({n, qd}), k = poisoned({n, kvd}), v = poisoned({n, kvd}), normed_x = poisoned({n, in});
      Both out = poisoned({n, qd});
      auto proj = [&](size_t j, Both& t) {
        return Backend::Projection{&(wt[j].*side), bias ? &(bt[j].*side) : nullptr, &(t.*side)};
      };
      const Backend::HeadNorms heads = normed ? Backend::HeadNorms{&(q_norm.*side), &(k_norm.*side), 1e-6f}
                                              : Backend::HeadNorms{};
      const Backend::Attend attend =
          block ? Backend::Attend{scale, &(out.*side), &(o.*side), &(residual.*side)} : Backend::Attend{};
      be.attention_input(x.*side, {&(norm.*side), 1e-6f, &(normed_x.*side)}, proj(0, q), proj(1, k), proj(2, v),
                         pos.*side, RopeTable{f.*side, 1.0f}, hd, cache, 1, pos.*side, heads, attend);
      if (block) return;
      be.attention(q.*side, cache, 1, scale, out.*side);
      be.matmuls(out.*side, {{&(o.*side), nullptr, &(residual.*side), true}}, {});
    };
    run(&Both::cpu, c.cpu, into, true);
    run(&Both::gpu, c.gpu, into, true);
    run(&Both::gpu, apart, apart_into, false);
    const std::string what = shape_name({q_heads, kv_heads, hd, prefix, n}) + (bias ? " +bias" : "") +
                             (normed ? " head-normed" : "") + (stack ? "" : " unstacked");
    const bool rounded_qkv = stack && !bias && !normed;
    // The q/k/v GEMM's input rounding (and its output's), then the prefill attention's and the o
    // GEMM's input.
    expect_close("attention block (prefill)", into, kBf16p + kBf16x, what);
    EXPECT_LE(rel_error(gpu().to_host_f32(into.gpu), gpu().to_host_f32(apart_into.gpu)),
              rounded_qkv ? kBf16x : kExact)
        << what << ": block against apart";
    ASSERT_EQ(lengths(c.gpu), lengths(c.cpu)) << what;
    ASSERT_EQ(lengths(apart), lengths(c.cpu)) << what;
    if (rounded_qkv) {
      expect_kv_close(gpu(), c.gpu, gpu(), apart, prefix + n, kBf16x, what + " against apart:");
    } else {
      for (const bool is_k : {true, false})
        EXPECT_EQ(bytes_of(is_k ? c.gpu.k[1] : c.gpu.v[1]), bytes_of(is_k ? apart.k[1] : apart.v[1]))
            << what << (is_k ? " K" : " V");
    }
    expect_kv_close(c, prefix + n, kBf16x + kBf16x, what);
  }
}

TEST_F(CudaAttention, KvAppendRoundsToBf16) {
  BothCache c = new_cache(1, 2, 64, 8);
  const std::vector<float> raw = random_floats(2 * 2 * 64);  // not bf16-exact
  Both k = acts(raw, {2, 128}), v = acts(raw, {2, 128});
  Both pos = ints({0, 1}, {2});
  gpu().kv_append(c.gpu, 0, k.gpu, v.gpu, pos.gpu);
  const std::vector<float> got = gpu().to_host_f32(c.gpu.k[0]);
  for (int t = 0; t < 2; t++)
    for (int h = 0; h < 2; h++)
      for (int d = 0; d < 64; d++)
        EXPECT_EQ(got[size_t((h * 8 + t) * 64 + d)], bf16_to_f32(f32_to_bf16(raw[size_t((t * 2 + h) * 64 + d)])));
}

// One new token over caches of 1, 17 and 4097 slots; GQA groups of 7 (Qwen2.5-7B), 4 (Llama-3),
// 1, 16 (a full 16-row tile) and 24 (two tiles); head_dims 128, 64 and 96 (no tensor-core path).
TEST_F(CudaAttention, Decode) {
  for (auto [q_heads, kv_heads, hd] : {std::tuple{28, 4, 128}, {32, 8, 128}, {14, 2, 64}, {8, 8, 64}, {32, 2, 128},
                                       {24, 1, 64}, {16, 1, 96}}) {
    for (int context : {1, 17, 4097}) {
      check(q_heads, kv_heads, hd, context - 1, 1, false);
      if (context > 1) check(q_heads, kv_heads, hd, context - 1, 1, true);
    }
  }
}

TEST_F(CudaAttention, DecodeLongContext) {
  for (auto [q_heads, kv_heads, hd] : {std::tuple{28, 4, 128}, {32, 8, 128}}) {
    check(q_heads, kv_heads, hd, 32770, 1, false);
    check(q_heads, kv_heads, hd, 32770, 1, true);
  }
}

// A chunk of n new tokens after `prefix` cached ones: n = 3 (split-K path), 9, 65, 300 (wgmma,
// 64-query blocks, partial ones), 1000 at 28 heads, 1200 at 14; 300 at 64 and 48 heads after
// 2500 (many blocks, long prefixes), head_dim 96 for the fallback.
TEST_F(CudaAttention, Prefill) {
  struct Case {
    int q_heads, kv_heads, hd, prefix, n;
    bool ragged;
  };
  const Case cases[] = {{28, 4, 128, 0, 1, false},   {28, 4, 128, 0, 3, false},   {28, 4, 128, 100, 3, true},
                        {28, 4, 128, 0, 300, false}, {28, 4, 128, 100, 300, true}, {28, 4, 128, 0, 1000, false},
                        {14, 2, 64, 0, 9, false},    {14, 2, 64, 37, 65, true},   {32, 8, 128, 4097, 300, true},
                        {14, 2, 64, 4097, 300, false}, {16, 4, 96, 50, 20, true}, {8, 8, 64, 0, 64, false},
                        {14, 2, 64, 37, 1200, true},  {64, 8, 128, 2500, 300, true}, {48, 4, 64, 2500, 300, false}};
  for (const Case& c : cases) check(c.q_heads, c.kv_heads, c.hd, c.prefix, c.n, c.ragged);
}

TEST_F(CudaAttention, PrefillLong) {
  check(28, 4, 128, 4097, 1000, false);
  check(28, 4, 128, 4097, 1000, true);
}

}  // namespace
}  // namespace kvlab
