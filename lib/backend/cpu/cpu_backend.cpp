#include "backend/cpu/cpu_backend.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"

namespace kvlab {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;
using StridedConstMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
using StridedMap = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;

// Queries are processed in blocks so a long prefill never holds a full [n, n] score matrix.
constexpr int64_t kQueryBlock = 256;

ConstMatrixMap as_matrix(const Tensor& t) { return ConstMatrixMap(t.ptr<float>(), t.rows(), t.cols()); }

// One (layer, KV head)'s middle region as attention sees it: every slot visible to every
// query, keys over the kept channels only; none at all where the head keeps no channel.
struct HeadMiddle {
  int64_t kept, length;
  const int32_t* channels;  // the kept channels, ascending
  ConstMatrixMap keys;      // [length, kept]

  HeadMiddle(const ChannelPrunedKV& mid, int layer, int64_t lh, int hd)
      : kept(mid.empty() ? 0 : mid.kept.ptr<int32_t>()[lh]),
        length(kept > 0 ? mid.length.ptr<int32_t>()[lh] : 0),
        channels(length ? mid.channels.ptr<int32_t>() + lh * hd : nullptr),
        keys(length ? mid.k[size_t(layer)].ptr<float>() + mid.k_offset.ptr<int32_t>()[lh] : nullptr, length, kept) {}
};
MatrixMap as_matrix(Tensor& t) { return MatrixMap(t.ptr<float>(), t.rows(), t.cols()); }

void check_f32(const Tensor& t, const char* what) {
  KVLAB_ASSERT(t.device == Device::CPU);
  if (t.dtype != DType::F32) fail(std::string("cpu backend: ") + what + " must be F32", kExitInternal);
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  std::string description() const override {
    return "cpu: Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) +
           "." + std::to_string(EIGEN_MINOR_VERSION) + ", fp32, " + std::to_string(omp_get_max_threads()) +
           " threads";
  }
  DType activation_dtype() const override { return DType::F32; }
  DType kv_dtype() const override { return DType::F32; }
  DType weight_dtype(DType) const override { return DType::F32; }

  size_t free_memory() const override {
    std::ifstream f("/proc/meminfo");
    std::string key;
    size_t kb = 0;
    std::string unit;
    while (f >> key >> kb >> unit)
      if (key == "MemAvailable:") return kb * 1024;
    return size_t(1) << 40;
  }

  size_t allocated_bytes() const override { return counter_->current(); }
  size_t peak_allocated_bytes() const override { return counter_->peak(); }
  void reset_peak() override { counter_->reset_peak(); }

  double measure_copy_bandwidth() override {
    const size_t bytes = size_t(512) << 20;  // well past any cache
    std::vector<char> a(bytes, 1), b(bytes, 2);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
      auto t0 = std::chrono::steady_clock::now();
      std::memcpy(b.data(), a.data(), bytes);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, 2.0 * double(bytes) / s);
      std::swap(a, b);
    }
    return best;
  }

  Tensor alloc(const std::vector<int64_t>& shape, DType dtype) override {
    Tensor t;
    t.shape = shape;
    t.dtype = dtype;
    t.device = Device::CPU;
    size_t bytes = std::max<size_t>(64, (t.bytes() + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    counter_->add(bytes);
    std::shared_ptr<AllocationCounter> counter = counter_;
    t.storage = std::shared_ptr<void>(p, [counter, bytes](void* q) {
      counter->remove(bytes);
      std::free(q);
    });
    t.data = p;
    return t;
  }

  void upload_weight_into(Tensor& dst, const void* host, DType stored) override {
    check_f32(dst, "weight");
    convert_to_f32(host, stored, size_t(dst.numel()), dst.ptr<float>());
  }

  void write(Tensor& dst, const void* host, size_t bytes) override {
    KVLAB_ASSERT(bytes <= dst.bytes());
    std::memcpy(dst.data, host, bytes);
  }
  void read(const Tensor& src, void* host, size_t bytes) override {
    KVLAB_ASSERT(bytes <= src.bytes());
    std::memcpy(host, src.data, bytes);
  }
  std::vector<float> to_host_f32(const Tensor& t) override {
    std::vector<float> out(size_t(t.numel()));
    convert_to_f32(t.data, t.dtype, out.size(), out.data());
    return out;
  }
  void synchronize() override {}

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    check_f32(table, "embedding table");
    const int64_t hidden = table.cols(), vocab = table.rows();
    for (int64_t i = 0; i < ids.numel(); i++) {
      int32_t id = ids.ptr<int32_t>()[i];
      if (id < 0 || id >= vocab)
        fail("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
      std::memcpy(out.ptr<float>() + i * hidden, table.ptr<float>() + int64_t(id) * hidden, size_t(hidden) * 4);
    }
  }

  void rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    check_f32(x, "rmsnorm input");
    const int64_t cols = weight.numel();
    KVLAB_ASSERT(x.numel() % cols == 0);
    ConstMatrixMap xm(x.ptr<float>(), x.numel() / cols, cols);
    MatrixMap om(out.ptr<float>(), x.numel() / cols, cols);
    Eigen::Map<const Eigen::RowVectorXf> w(weight.ptr<float>(), cols);
    for (int64_t r = 0; r < xm.rows(); r++) {
      float mean_sq = xm.row(r).squaredNorm() / float(cols);
      om.row(r) = (xm.row(r) * (1.0f / std::sqrt(mean_sq + eps))).cwiseProduct(w);
    }
  }

  void matmuls(const Tensor& x, std::initializer_list<Projection> projections, const InputNorm& norm) override {
    const Tensor& in = normed_input(x, norm);
    check_f32(in, "matmul input");
    for (const Projection& p : projections) {
      check_f32(*p.w, "matmul weight");
      KVLAB_ASSERT(in.cols() == p.w->cols() && p.out->cols() == p.w->rows() && p.out->rows() == in.rows());
      MatrixMap o = as_matrix(*p.out);
      const auto product = as_matrix(in) * as_matrix(*p.w).transpose();
      auto add_bias = [&](auto&& m) {
        if (p.bias) m.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(p.bias->ptr<float>(), p.bias->numel());
      };
      if (p.accumulate) {
        // x · w^T + bias rounded apart, then added: the residual join as HF's model (and the CUDA
        // GEMV) does it.
        RowMatrix y = product;
        add_bias(y);
        o += y;
      } else {
        o.noalias() = product;
        add_bias(o);
      }
    }
  }

  void rope(Tensor& x, const Tensor& positions, const RopeTable& rope, int head_dim) override {
    const int half = head_dim / 2;
    const int64_t n = positions.numel();
    const int64_t heads = x.numel() / (n * head_dim);
    const float* inv_freq = rope.inv_freq.ptr<float>();
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t i = 0; i < n; i++) {
      // fp32 angle, as HF computes it, so positions far out round the same way.
      const float pos = float(positions.ptr<int32_t>()[i]);
      for (int j = 0; j < half; j++) {
        float angle = pos * inv_freq[j];
        cos_t[size_t(j)] = std::cos(angle) * rope.attention_scaling;
        sin_t[size_t(j)] = std::sin(angle) * rope.attention_scaling;
      }
      for (int64_t h = 0; h < heads; h++) {
        float* v = x.ptr<float>() + (i * heads + h) * head_dim;
        for (int j = 0; j < half; j++) {
          float a = v[j], b = v[j + half];
          v[j] = a * cos_t[size_t(j)] - b * sin_t[size_t(j)];
          v[j + half] = b * cos_t[size_t(j)] + a * sin_t[size_t(j)];
        }
      }
    }
  }

  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override {
    const float* g = gate.ptr<float>();
    const float* u = up.ptr<float>();
    float* o = out.ptr<float>();
    for (int64_t i = 0; i < gate.numel(); i++) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }

  void kv_append(KVCache& cache, int layer, const Tensor& k, const Tensor& v, const Tensor& positions) override {
    const int64_t n = positions.numel();
    const int hd = cache.head_dim;
    for (int h = 0; h < cache.kv_heads; h++) {
      int32_t& len = cache.length.ptr<int32_t>()[layer * cache.kv_heads + h];
      KVLAB_ASSERT(len + n <= cache.capacity);
      float* kd = cache.k[size_t(layer)].ptr<float>() + (int64_t(h) * cache.capacity + len) * hd;
      float* vd = cache.v[size_t(layer)].ptr<float>() + (int64_t(h) * cache.capacity + len) * hd;
      int32_t* pd = cache.position.ptr<int32_t>() + (int64_t(layer) * cache.kv_heads + h) * cache.capacity + len;
      for (int64_t i = 0; i < n; i++) {
        std::memcpy(kd + i * hd, k.ptr<float>() + (i * cache.kv_heads + h) * hd, size_t(hd) * 4);
        std::memcpy(vd + i * hd, v.ptr<float>() + (i * cache.kv_heads + h) * hd, size_t(hd) * 4);
        pd[i] = positions.ptr<int32_t>()[i];
      }
      len += int32_t(n);
    }
  }

  void attention(const Tensor& q, const KVCache& cache, int layer, float scale, Tensor& out) override {
    const int hd = cache.head_dim;
    const int64_t n = q.rows();
    const int64_t q_heads = q.cols() / hd;
    const int64_t group = q_heads / cache.kv_heads;
    const int64_t stride = q.cols();
    const ChannelPrunedKV& mid = cache.pruned;
    // Threads only pay off once a head's work outweighs waking them (the middle: what it holds).
    int64_t mid_slots = 0;
    for (int h = 0; h < (mid.empty() ? 0 : cache.kv_heads); h++)
      mid_slots = std::max<int64_t>(mid_slots, mid.host_length[size_t(layer * cache.kv_heads + h)]);
    const bool parallel = n * (cache.capacity + mid_slots) * hd >= (int64_t(1) << 16);
#pragma omp parallel for schedule(dynamic) if (parallel)
    for (int64_t h = 0; h < q_heads; h++) {
      const int64_t kvh = h / group;
      const int64_t lh = layer * cache.kv_heads + kvh;
      const int64_t len = cache.length.ptr<int32_t>()[lh];
      ConstMatrixMap keys(cache.k[size_t(layer)].ptr<float>() + kvh * cache.capacity * hd, len, hd);
      ConstMatrixMap values(cache.v[size_t(layer)].ptr<float>() + kvh * cache.capacity * hd, len, hd);
      const HeadMiddle middle(mid, layer, lh, hd);
      const int64_t kept = middle.kept, mid_len = middle.length;
      ConstMatrixMap mid_values(
          mid_len ? mid.v[size_t(layer)].ptr<float>() + int64_t(mid.v_row.ptr<int32_t>()[lh]) * mid.capacity * hd
                  : nullptr,
          mid_len, hd);
      for (int64_t q0 = 0; q0 < n; q0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, n - q0);
        StridedConstMap qh(q.ptr<float>() + q0 * stride + h * hd, rows, hd, Eigen::OuterStride<>(stride));
        StridedMap oh(out.ptr<float>() + q0 * stride + h * hd, rows, hd, Eigen::OuterStride<>(stride));
        // Query q0 + r sees the middle and full slots [0, len - n + q0 + r].
        const int64_t visible_max = len - n + q0 + rows;
        RowMatrix scores(rows, mid_len + visible_max);
        scores.rightCols(visible_max) = (qh * keys.topRows(visible_max).transpose()) * scale;
        if (mid_len) {
          RowMatrix q_kept(rows, kept);
          for (int64_t c = 0; c < kept; c++) q_kept.col(c) = qh.col(middle.channels[c]);
          scores.leftCols(mid_len) = (q_kept * middle.keys.transpose()) * scale;
        }
        for (int64_t r = 0; r < rows; r++) {
          const int64_t visible = mid_len + len - n + q0 + r + 1;
          auto row = scores.row(r);
          row.tail(mid_len + visible_max - visible).setConstant(-std::numeric_limits<float>::infinity());
          float m = row.head(visible).maxCoeff();
          row = (row.array() - m).exp();
          row /= row.head(visible).sum();
        }
        oh.noalias() = scores.rightCols(visible_max) * values.topRows(visible_max);
        if (mid_len) oh.noalias() += scores.leftCols(mid_len) * mid_values;
      }
    }
  }

  void kv_demote(KVCache& cache, int layer, const Tensor& count) override {
    ChannelPrunedKV& mid = cache.pruned;
    KVLAB_ASSERT(!mid.empty());
    const int hd = cache.head_dim;
    for (int h = 0; h < cache.kv_heads; h++) {
      const int64_t lh = int64_t(layer) * cache.kv_heads + h;
      const int32_t n = count.ptr<int32_t>()[h];
      int32_t& mid_len = mid.length.ptr<int32_t>()[lh];
      const int32_t front = mid.front.ptr<int32_t>()[lh];
      KVLAB_ASSERT(n >= 0 && front + n <= cache.length.ptr<int32_t>()[lh] && mid_len + n <= mid.capacity);
      const int64_t src = int64_t(h) * cache.capacity + front;
      const float* k = cache.k[size_t(layer)].ptr<float>() + src * hd;
      const float* v = cache.v[size_t(layer)].ptr<float>() + src * hd;
      const int32_t kept = mid.kept.ptr<int32_t>()[lh];
      const int32_t* channels = mid.channels.ptr<int32_t>() + lh * hd;
      if (kept > 0) {
        float* mk = mid.k[size_t(layer)].ptr<float>() + mid.k_offset.ptr<int32_t>()[lh] + int64_t(mid_len) * kept;
        for (int32_t i = 0; i < n; i++)
          for (int32_t c = 0; c < kept; c++) mk[int64_t(i) * kept + c] = k[int64_t(i) * hd + channels[c]];
        float* mv = mid.v[size_t(layer)].ptr<float>() +
                    (int64_t(mid.v_row.ptr<int32_t>()[lh]) * mid.capacity + mid_len) * hd;
        std::memcpy(mv, v, size_t(n) * size_t(hd) * 4);
      }
      std::memcpy(mid.position.ptr<int32_t>() + lh * mid.capacity + mid_len,
                  cache.position.ptr<int32_t>() + lh * cache.capacity + front, size_t(n) * 4);
      if (!mid.score.empty())
        std::memcpy(mid.score.ptr<float>() + lh * mid.capacity + mid_len,
                    cache.score.ptr<float>() + lh * cache.capacity + front, size_t(n) * 4);
      mid_len += n;
    }
  }

  void accumulate_attention(const Tensor& q, KVCache& cache, int layer, float scale, int first_query) override {
    const ChannelPrunedKV& mid = cache.pruned;
    KVLAB_ASSERT(!cache.score.empty() && (mid.empty() || !mid.score.empty()));
    const int hd = cache.head_dim;
    const int64_t n = q.rows();
    const int64_t q_heads = q.cols() / hd;
    const int64_t group = q_heads / cache.kv_heads;
    const bool parallel = n * int64_t(cache.capacity + mid.capacity) * hd >= (int64_t(1) << 16);
#pragma omp parallel for if (parallel)
    for (int64_t kvh = 0; kvh < cache.kv_heads; kvh++) {
      const int64_t lh = layer * cache.kv_heads + kvh;
      const int64_t len = cache.length.ptr<int32_t>()[lh];
      ConstMatrixMap keys(cache.k[size_t(layer)].ptr<float>() + kvh * cache.capacity * hd, len, hd);
      float* score = cache.score.ptr<float>() + lh * cache.capacity;
      const HeadMiddle middle(mid, layer, lh, hd);
      const int64_t kept = middle.kept, mid_len = middle.length;
      float* mid_score = mid_len ? mid.score.ptr<float>() + lh * mid.capacity : nullptr;
      Eigen::VectorXf p, q_kept(kept);
      for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
        for (int64_t i = first_query; i < n; i++) {
          const int64_t visible = len - n + i + 1;
          Eigen::Map<const Eigen::VectorXf> qi(q.ptr<float>() + i * q.cols() + h * hd, hd);
          p.resize(mid_len + visible);
          p.tail(visible) = (keys.topRows(visible) * qi) * scale;
          if (mid_len) {
            for (int64_t c = 0; c < kept; c++) q_kept[c] = qi[middle.channels[c]];
            p.head(mid_len) = (middle.keys * q_kept) * scale;
          }
          p = (p.array() - p.maxCoeff()).exp();
          p /= p.sum();
          for (int64_t j = 0; j < mid_len; j++) mid_score[j] += p[j];
          for (int64_t j = 0; j < visible; j++) score[j] += p[mid_len + j];
        }
      }
    }
  }

  void kv_compact(KVCache& cache, int layer, const Tensor& keep, const Tensor& count,
                  const CompactKeys& keys) override {
    const int hd = cache.head_dim;
    const ChannelPrunedKV& mid = cache.pruned;
    KVLAB_ASSERT(!keys.middle || !mid.empty());
    const int capacity = keys.middle ? mid.capacity : cache.capacity;
    KVLAB_ASSERT(keep.shape.size() == 2 && (keep.dim(0) == cache.kv_heads || keep.dim(0) == 1) &&
                 keep.dim(1) <= capacity);
    for (int h = 0; h < cache.kv_heads; h++) {
      const int64_t head = int64_t(layer) * cache.kv_heads + h;
      // The region's rows of this head: K of `width` channels (channel j of a row is `channel[j]`
      // of the key), V of head_dim or none, positions, scores, length.
      int width = hd;
      const int32_t* channel = nullptr;
      float *k, *v;
      int32_t *pos, *length;
      float* score = nullptr;
      if (keys.middle) {
        width = mid.kept.ptr<int32_t>()[head];
        channel = mid.channels.ptr<int32_t>() + head * hd;
        k = width ? mid.k[size_t(layer)].ptr<float>() + mid.k_offset.ptr<int32_t>()[head] : nullptr;
        v = width ? mid.v[size_t(layer)].ptr<float>() + int64_t(mid.v_row.ptr<int32_t>()[head]) * capacity * hd : nullptr;
        pos = mid.position.ptr<int32_t>() + head * capacity;
        length = mid.length.ptr<int32_t>() + head;
        if (!mid.score.empty()) score = mid.score.ptr<float>() + head * capacity;
      } else {
        k = cache.k[size_t(layer)].ptr<float>() + int64_t(h) * capacity * hd;
        v = cache.v[size_t(layer)].ptr<float>() + int64_t(h) * capacity * hd;
        pos = cache.position.ptr<int32_t>() + head * capacity;
        length = cache.length.ptr<int32_t>() + head;
        if (!cache.score.empty()) score = cache.score.ptr<float>() + head * capacity;
      }
      const int32_t* kp = keep.ptr<int32_t>() + (keep.dim(0) == 1 ? 0 : h) * keep.dim(1);
      const int32_t* shift = keys.shift ? keys.shift->ptr<int32_t>() + 2 * h : nullptr;
      const int32_t n = count.ptr<int32_t>()[h];
      KVLAB_ASSERT(n <= keep.dim(1));
      // Ascending sources and dst <= src make the in-place forward copy safe.
      for (int32_t dst = 0; dst < n; dst++) {
        const int32_t src = kp[dst];
        KVLAB_ASSERT(src >= dst && src < *length);
        if (src != dst) {
          if (width) std::memcpy(k + int64_t(dst) * width, k + int64_t(src) * width, size_t(width) * 4);
          if (v) std::memcpy(v + int64_t(dst) * hd, v + int64_t(src) * hd, size_t(hd) * 4);
          pos[dst] = pos[src];
          if (score) score[dst] = score[src];
        }
        const int32_t turn = dst - src + (shift && dst >= shift[0] ? shift[1] : 0);
        if (keys.renumber && turn != 0 && width) {
          // Rotating by `turn` moves a key rotated at age index i to index i + turn.
          float* x = k + int64_t(dst) * width;
          const int half = width / 2;
          for (int j = 0; j < half; j++) {
            const float angle = float(turn) * keys.renumber->inv_freq.ptr<float>()[channel ? channel[j] : j];
            const float c = std::cos(angle), s = std::sin(angle);
            const float a = x[j], b = x[j + half];
            x[j] = a * c - b * s;
            x[j + half] = b * c + a * s;
          }
        }
      }
      if (score) std::fill(score + n, score + capacity, 0.0f);
      *length = n;
    }
  }

  void argmax(const Tensor& logits, Tensor& out) override {
    ConstMatrixMap l = as_matrix(logits);
    for (int64_t r = 0; r < l.rows(); r++) {
      Eigen::Index best;
      l.row(r).maxCoeff(&best);
      out.ptr<int32_t>()[r] = int32_t(best);
    }
  }

 private:
  // Shared with the deleters, so tensors outliving the backend still count down safely.
  std::shared_ptr<AllocationCounter> counter_ = std::make_shared<AllocationCounter>();
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace kvlab
