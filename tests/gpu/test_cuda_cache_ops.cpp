// The cache-policy ops of the CUDA backend against the CPU backend: kv_compact (ragged
// per-head keep lists, with and without re-rotation, scores travelling with their slots, one
// pass and several) and accumulate_attention (prefill windows and decode steps, GQA groups that
// do and do not fill a tile, ragged lengths).
//
// Keys and values are drawn bf16-exact, so both caches hold identical values and:
//   - a compaction without re-rotation moves bits: K, V, positions and scores must be equal;
//   - a re-rotated key is rounded to bf16 once on the GPU (the CPU keeps fp32): at most 2^-9
//     relative per element, ~1.1e-3 RMS, so a relative error bound of 4e-3;
//   - accumulated probabilities are fp32 on both sides and differ only in the order of
//     operations (~1e-6 seen in similar sums); 1e-4 leaves room and still catches a wrong mask
//     or a lost row, which moves whole probabilities (errors near 1).
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <tuple>

#include "gpu/backend_pair.h"

namespace kvlab {
namespace {

using gpu_testing::bf16_exact;
using gpu_testing::inv_freq;
using gpu_testing::random_floats;
using gpu_testing::rel_error;
using gpu_testing::rng;

constexpr double kRotatedKeys = 4e-3;
constexpr double kScores = 1e-4;
constexpr double kAttentionAfterCompaction = 2e-4;  // test_cuda_ops.cpp's split-K bound

struct BothCache {
  KVCache cpu, gpu;
};

class CudaCacheOps : public gpu_testing::BackendPair {
 protected:
  // With scores: random ones in [-score_scale, score_scale].
  static BothCache new_cache(int layers, int kv_heads, int hd, int capacity, bool scores, float score_scale = 5.0f) {
    BothCache c{cpu().alloc_kv_cache(layers, kv_heads, hd, capacity),
                gpu().alloc_kv_cache(layers, kv_heads, hd, capacity)};
    if (scores) {
      const std::vector<float> s = random_floats(size_t(layers) * kv_heads * capacity, score_scale);
      c.cpu.score = cpu().alloc({layers, kv_heads, capacity}, DType::F32);
      c.gpu.score = gpu().alloc({layers, kv_heads, capacity}, DType::F32);
      cpu().write(c.cpu.score, s.data(), s.size() * 4);
      gpu().write(c.gpu.score, s.data(), s.size() * 4);
    }
    return c;
  }
  template <typename T>
  static Tensor put(Backend& b, const std::vector<T>& v, std::vector<int64_t> shape, DType dtype) {
    Tensor t = b.alloc(shape, dtype);
    b.write(t, v.data(), v.size() * sizeof(T));
    return t;
  }
  // Appends n random bf16-exact tokens at positions first_position.. to `layer` of both.
  static void append(BothCache& c, int layer, int n, int first_position) {
    for (int done = 0; done < n;) {
      const int chunk = std::min(n - done, 2048);
      const int64_t row = int64_t(c.cpu.kv_heads) * c.cpu.head_dim;
      const std::vector<float> k = bf16_exact(random_floats(size_t(chunk * row))),
                               v = bf16_exact(random_floats(size_t(chunk * row)));
      std::vector<int32_t> p(static_cast<size_t>(chunk));
      for (int i = 0; i < chunk; i++) p[size_t(i)] = first_position + done + i;
      for (Backend* b : {&cpu(), &gpu()}) {
        KVCache& cache = b == &cpu() ? c.cpu : c.gpu;
        Tensor kt = put(*b, k, {chunk, row}, DType::F32), vt = put(*b, v, {chunk, row}, DType::F32);
        Tensor pt = put(*b, p, {chunk}, DType::I32);
        b->kv_append(cache, layer, kt, vt, pt);
      }
      done += chunk;
    }
  }
  static std::vector<int32_t> ints(Backend& b, const Tensor& t) {
    std::vector<int32_t> h(size_t(t.numel()));
    b.read(t, h.data(), h.size() * 4);
    return h;
  }
  static void set_lengths(BothCache& c, const std::vector<int32_t>& len) {
    cpu().write(c.cpu.length, len.data(), len.size() * 4);
    gpu().write(c.gpu.length, len.data(), len.size() * 4);
  }
  // Layer 1 of two filled to ragged per-head lengths up to `capacity`; layer 0 full (and never
  // touched). One slot more is allocated, so a token can be appended after compaction.
  static BothCache ragged_cache(int kv_heads, int hd, int capacity, bool scores, std::vector<int32_t>* lengths) {
    BothCache c = new_cache(2, kv_heads, hd, capacity + 1, scores);
    append(c, 0, capacity, 0);
    append(c, 1, capacity, 0);
    std::vector<int32_t> len = ints(cpu(), c.cpu.length);
    std::uniform_int_distribution<int32_t> pick(1, capacity);
    for (int h = 0; h < kv_heads; h++) len[size_t(kv_heads + h)] = h == 0 ? capacity : pick(rng());
    set_lengths(c, len);
    lengths->assign(len.begin() + kv_heads, len.end());
    return c;
  }
};

// Keep lists of every kind a policy makes: all (identity), none, the last slot only, sinks
// plus a recent window (StreamingLLM), every other slot, and random subsets.
std::vector<std::vector<int32_t>> keep_lists(const std::vector<int32_t>& lengths) {
  std::vector<std::vector<int32_t>> keep(lengths.size());
  for (size_t h = 0; h < lengths.size(); h++) {
    const int len = lengths[h];
    std::vector<int32_t>& k = keep[h];
    switch (h % 6) {
      case 0:
        for (int j = 0; j < len; j++) k.push_back(j);
        break;
      case 1:
        break;
      case 2:
        k.push_back(len - 1);
        break;
      case 3:
        for (int j = 0; j < std::min(4, len); j++) k.push_back(j);
        for (int j = std::max(4, len - len / 3); j < len; j++) k.push_back(j);
        break;
      case 4:
        for (int j = 1; j < len; j += 2) k.push_back(j);
        break;
      default: {
        std::bernoulli_distribution keep_it(0.4);
        for (int j = 0; j < len; j++)
          if (keep_it(rng())) k.push_back(j);
      }
    }
  }
  return keep;
}

TEST_F(CudaCacheOps, KvCompactMatchesCpu) {
  struct Case {
    int kv_heads, hd, capacity;
    bool renumber, scores;
  };
  // head_dim 40: the scalar path (half not a multiple of 8); 8 x 128 x 20000: several passes.
  const Case cases[] = {{2, 16, 40, false, true},   {2, 16, 40, true, false},   {6, 128, 300, true, true},
                        {8, 64, 1000, false, true}, {3, 96, 77, true, true},    {6, 40, 50, true, true},
                        {7, 32, 513, true, false},  {8, 128, 20000, true, true}};
  for (const Case& cs : cases) {
    const std::string what = std::to_string(cs.kv_heads) + " heads x " + std::to_string(cs.hd) + " dims, capacity " +
                             std::to_string(cs.capacity) + (cs.renumber ? ", renumbered" : "") +
                             (cs.scores ? ", scores" : "");
    std::vector<int32_t> lengths;
    BothCache c = ragged_cache(cs.kv_heads, cs.hd, cs.capacity, cs.scores, &lengths);
    const int cap = c.cpu.capacity;
    const std::vector<std::vector<int32_t>> keep = keep_lists(lengths);
    std::vector<int32_t> keep_flat(size_t(cs.kv_heads) * cap, 0), count(size_t(cs.kv_heads));
    for (int h = 0; h < cs.kv_heads; h++) {
      std::copy(keep[size_t(h)].begin(), keep[size_t(h)].end(), keep_flat.begin() + int64_t(h) * cap);
      count[size_t(h)] = int32_t(keep[size_t(h)].size());
    }
    const std::vector<float> freq = inv_freq(cs.hd, cs.hd == 128 ? 5e5 : 1e4);
    const std::vector<float> layer0_k = gpu().to_host_f32(c.gpu.k[0]);
    for (Backend* b : {&cpu(), &gpu()}) {
      KVCache& cache = b == &cpu() ? c.cpu : c.gpu;
      Tensor kt = put(*b, keep_flat, {cs.kv_heads, cap}, DType::I32);
      Tensor ct = put(*b, count, {cs.kv_heads}, DType::I32);
      RopeTable rope{put(*b, freq, {cs.hd / 2}, DType::F32), 1.0f};
      b->kv_compact(cache, 1, kt, ct, {false, cs.renumber ? &rope : nullptr});
      b->synchronize();
    }
    ASSERT_EQ(ints(gpu(), c.gpu.length), ints(cpu(), c.cpu.length)) << what;
    EXPECT_EQ(gpu().to_host_f32(c.gpu.k[0]), layer0_k) << "layer 0 changed: " << what;

    const std::vector<float> kc = cpu().to_host_f32(c.cpu.k[1]), kg = gpu().to_host_f32(c.gpu.k[1]);
    const std::vector<float> vc = cpu().to_host_f32(c.cpu.v[1]), vg = gpu().to_host_f32(c.gpu.v[1]);
    const std::vector<int32_t> pc = ints(cpu(), c.cpu.position), pg = ints(gpu(), c.gpu.position);
    const int64_t layer_slots = int64_t(cs.kv_heads) * cap;
    for (int h = 0; h < cs.kv_heads; h++) {
      const int64_t begin = int64_t(h) * cap, end = begin + count[size_t(h)];
      auto rows = [&](const std::vector<float>& t) {
        return std::vector<float>(t.begin() + begin * cs.hd, t.begin() + end * cs.hd);
      };
      const std::string where = what + ", head " + std::to_string(h) + " (" + std::to_string(count[size_t(h)]) +
                                " of " + std::to_string(lengths[size_t(h)]) + " kept)";
      EXPECT_EQ(rows(vg), rows(vc)) << "V " << where;
      if (cs.renumber) {
        EXPECT_LE(rel_error(rows(kg), rows(kc)), kRotatedKeys) << "K " << where;
      } else {
        EXPECT_EQ(rows(kg), rows(kc)) << "K " << where;
      }
      EXPECT_TRUE(std::equal(pg.begin() + layer_slots + begin, pg.begin() + layer_slots + end,
                             pc.begin() + layer_slots + begin))
          << "positions " << where;
    }
    if (cs.scores) {  // moved with their slots, zero past the kept ones, layer 0 untouched
      EXPECT_EQ(gpu().to_host_f32(c.gpu.score), cpu().to_host_f32(c.cpu.score)) << "scores " << what;
    }

    // The compacted cache is a valid cache: a new token appended after it attends the same.
    append(c, 1, 1, 100000);
    const int q_heads = cs.kv_heads * 2;
    const std::vector<float> q = random_floats(size_t(q_heads) * cs.hd, 2.0f);
    std::vector<float> out[2];
    for (Backend* b : {&cpu(), &gpu()}) {
      Tensor qt = put(*b, q, {1, int64_t(q_heads) * cs.hd}, DType::F32);
      Tensor ot = b->alloc({1, int64_t(q_heads) * cs.hd}, DType::F32);
      b->attention(qt, b == &cpu() ? c.cpu : c.gpu, 1, 1.0f / std::sqrt(float(cs.hd)), ot);
      out[b == &gpu()] = b->to_host_f32(ot);
    }
    EXPECT_LE(rel_error(out[1], out[0]), cs.renumber ? kRotatedKeys : kAttentionAfterCompaction)
        << "attention after compaction: " << what;
  }
}

TEST_F(CudaCacheOps, KvCompactRejectsABadKeepList) {
  BothCache c = new_cache(1, 2, 16, 8, false);
  append(c, 0, 6, 0);
  for (const std::vector<int32_t>& bad : {std::vector<int32_t>{3, 2}, std::vector<int32_t>{1, 7}}) {
    std::vector<int32_t> keep(16, 0);
    std::copy(bad.begin(), bad.end(), keep.begin());
    Tensor kt = put(gpu(), keep, {2, 8}, DType::I32);
    Tensor ct = put(gpu(), std::vector<int32_t>{2, 0}, {2}, DType::I32);
    try {
      gpu().kv_compact(c.gpu, 0, kt, ct);
      gpu().synchronize();
      ADD_FAILURE() << "keep list " << bad[0] << ", " << bad[1] << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("kv_compact"), std::string::npos) << e.what();
    }
  }
  gpu().synchronize();  // the error was reported once and cleared
}

// accumulate_attention over the n newest tokens of a ragged cache, from random nonzero
// scores (so "adds" is checked), layer 1 of two.
struct ScoreCase {
  int q_heads, kv_heads, hd, prefix, n, first_query;
  bool ragged;
};

class CudaScores : public CudaCacheOps {
 protected:
  static BothCache scored_cache(const ScoreCase& s) {
    // Small base scores, so that the fp32 sums keep the increments' low bits on both sides.
    const int capacity = s.prefix + s.n + 37;
    BothCache c = new_cache(2, s.kv_heads, s.hd, capacity, true, 1e-4f);
    append(c, 0, s.prefix + s.n, 0);
    append(c, 1, s.prefix, 0);
    if (s.ragged) {
      std::vector<int32_t> len = ints(cpu(), c.cpu.length);
      std::uniform_int_distribution<int32_t> pick(0, s.prefix);
      for (int h = 1; h < s.kv_heads; h++) len[size_t(s.kv_heads + h)] = pick(rng());
      set_lengths(c, len);
    }
    return c;
  }
  // Appends n tokens, accumulates on both backends; compares the increments of layer 1 and
  // checks that each query row's probabilities sum to one.
  static void step(BothCache& c, const ScoreCase& s, int first_position, const std::string& what) {
    append(c, 1, s.n, first_position);
    const std::vector<float> q = random_floats(size_t(s.n) * s.q_heads * s.hd, 2.0f);
    const std::vector<float> before = cpu().to_host_f32(c.cpu.score);
    ASSERT_EQ(gpu().to_host_f32(c.gpu.score), before) << "scores differ before: " << what;
    for (Backend* b : {&cpu(), &gpu()}) {
      Tensor qt = put(*b, q, {s.n, int64_t(s.q_heads) * s.hd}, DType::F32);
      b->accumulate_attention(qt, b == &cpu() ? c.cpu : c.gpu, 1, 1.0f / std::sqrt(float(s.hd)), s.first_query);
    }
    const std::vector<float> got = gpu().to_host_f32(c.gpu.score), want = cpu().to_host_f32(c.cpu.score);
    const size_t layer0 = size_t(s.kv_heads) * size_t(c.cpu.capacity);
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + long(layer0), before.begin())) << "layer 0 changed: " << what;
    std::vector<float> inc_got(got.size() - layer0), inc_want(inc_got.size());
    double total = 0;
    for (size_t i = layer0; i < got.size(); i++) {
      inc_got[i - layer0] = float(double(got[i]) - before[i]);
      inc_want[i - layer0] = float(double(want[i]) - before[i]);
      total += double(got[i]) - before[i];
    }
    const double err = rel_error(inc_got, inc_want);
    EXPECT_LE(err, kScores) << what;
    const double rows = double(s.n - s.first_query) * s.q_heads;
    EXPECT_NEAR(total, rows, 1e-3 * rows) << "probabilities per row must sum to 1: " << what;
    // Copy the CPU's result over, so the next step starts from identical scores again.
    gpu().write(c.gpu.score, want.data(), want.size() * 4);
  }
};

std::string name(const ScoreCase& s) {
  return std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads) + " heads x " + std::to_string(s.hd) +
         ", prefix " + std::to_string(s.prefix) + ", n " + std::to_string(s.n) + " from " +
         std::to_string(s.first_query) + (s.ragged ? ", ragged" : "");
}

// Prefill chunks scoring all queries (H2O) or a window of the last ones (SnapKV), GQA groups
// of 1 to 24 (more rows than a tile per query), head_dims 16 to 128.
TEST_F(CudaScores, PrefillWindows) {
  const ScoreCase cases[] = {{28, 4, 128, 0, 300, 0, false},   {28, 4, 128, 100, 300, 268, true},
                             {32, 8, 128, 4097, 64, 32, true}, {14, 2, 64, 37, 9, 3, true},
                             {16, 1, 96, 50, 20, 0, false},    {4, 2, 16, 0, 288, 256, false},
                             {24, 1, 64, 10, 40, 39, false},   {8, 8, 32, 5, 3, 1, true}};
  for (const ScoreCase& s : cases) {
    BothCache c = scored_cache(s);
    step(c, s, s.prefix, name(s));
  }
}

// One query (H2O's per-step path) over 1 to 33000 slots (several splits), then a few steps.
TEST_F(CudaScores, DecodeSteps) {
  const ScoreCase cases[] = {{32, 8, 128, 4096, 1, 0, false}, {28, 4, 128, 16, 1, 0, true},
                             {28, 4, 128, 0, 1, 0, false},    {8, 8, 64, 33000, 1, 0, true},
                             {4, 2, 16, 287, 1, 0, false},    {4, 2, 32, 100, 1, 0, true}};
  for (const ScoreCase& s : cases) {
    BothCache c = scored_cache(s);
    for (int i = 0; i < 3; i++) step(c, s, s.prefix + i, name(s) + ", step " + std::to_string(i));
  }
}

}  // namespace
}  // namespace kvlab
