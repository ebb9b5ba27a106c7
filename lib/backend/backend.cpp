#include "backend/backend.h"

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef KVLAB_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace kvlab {

void Backend::capture_or_replay(std::unique_ptr<Recording>&, const std::function<void()>& ops) { ops(); }

const Tensor* Backend::input_norm_weight(const Tensor& x, const InputNorm& norm) {
  KVLAB_ASSERT(!norm.weight || norm.weight->numel() == x.cols());
  return norm.weight;
}

const Tensor& Backend::normed_input(const Tensor& x, const InputNorm& norm) {
  const Tensor* weight = input_norm_weight(x, norm);
  if (!weight) return x;
  KVLAB_ASSERT(norm.normed != nullptr);
  rmsnorm(x, *weight, norm.eps, *norm.normed);
  return *norm.normed;
}

Tensor Backend::upload_weight(const void* host, DType stored, const std::vector<int64_t>& shape) {
  Tensor t = alloc(shape, weight_dtype(stored));
  upload_weight_into(t, host, stored);
  return t;
}

void Backend::rope_kv_append(Tensor& q, Tensor& k, const Tensor& v, const Tensor& rope_positions,
                             const RopeTable& rope_table, int head_dim, KVCache& cache, int layer,
                             const Tensor& positions, const HeadNorms& norms) {
  if (norms.q) {
    Tensor q_heads = q.reshape({q.numel() / head_dim, head_dim}), k_heads = k.reshape({k.numel() / head_dim, head_dim});
    rmsnorm(q_heads, *norms.q, norms.eps, q_heads);
    rmsnorm(k_heads, *norms.k, norms.eps, k_heads);
  }
  rope(q, rope_positions, rope_table, head_dim);
  rope(k, rope_positions, rope_table, head_dim);
  kv_append(cache, layer, k, v, positions);
}

void Backend::attention_input(const Tensor& x, const InputNorm& norm, const Projection& q, const Projection& k,
                              const Projection& v, const Tensor& rope_positions, const RopeTable& rope, int head_dim,
                              KVCache& cache, int layer, const Tensor& positions, const HeadNorms& norms,
                              const Attend& attend) {
  matmuls(x, {q, k, v}, norm);
  rope_kv_append(*q.out, *k.out, *v.out, rope_positions, rope, head_dim, cache, layer, positions, norms);
  if (attend.out) attention(*q.out, cache, layer, attend.scale, *attend.out);
  project_attention(attend);
}

void Backend::project_attention(const Attend& attend) {
  if (attend.o) matmuls(*attend.out, {{attend.o, nullptr, attend.into, true}}, {});
}

void Backend::matmul_swiglu(const Tensor& x, const Tensor& gate, const Tensor& up, Tensor& gate_out, Tensor& up_out,
                            Tensor& out, const InputNorm& norm) {
  matmuls(normed_input(x, norm), {{&gate, nullptr, &gate_out}, {&up, nullptr, &up_out}}, {});
  swiglu(gate_out, up_out, out);
}

void Backend::mlp(Tensor& x, const Tensor& gate, const Tensor& up, const Tensor& down, Tensor& gate_out,
                  Tensor& up_out, Tensor& act, const InputNorm& norm) {
  matmul_swiglu(x, gate, up, gate_out, up_out, act, norm);
  matmuls(act, {{&down, nullptr, &x, true}}, {});
}

void AllocationCounter::add(size_t bytes) {
  current_ += bytes;
  peak_ = std::max(peak_, current_);
}
void AllocationCounter::remove(size_t bytes) { current_ -= bytes; }

BackendKind backend_kind_from_name(const std::string& name) {
  if (name == "cpu") return BackendKind::CPU;
  if (name == "cuda") return BackendKind::CUDA;
  fail("unknown backend \"" + name + "\" (choose cpu or cuda)");
}

bool cuda_compiled() {
#ifdef KVLAB_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef KVLAB_CUDA
  return cuda_visible_devices();
#else
  return 0;
#endif
}

std::unique_ptr<Backend> make_backend(BackendKind kind, int device_index) {
  if (kind == BackendKind::CPU) return make_cpu_backend();
#ifdef KVLAB_CUDA
  if (cuda_device_count() == 0) fail("--backend cuda: no CUDA device is visible");
  return make_cuda_backend(device_index);
#else
  (void)device_index;
  fail("--backend cuda: this kvlab was built without CUDA (configure with -DKVLAB_CUDA=ON)");
#endif
}

KVCache Backend::alloc_kv_cache(int layers, int kv_heads, int head_dim, int capacity) {
  KVCache c;
  c.layers = layers;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.capacity = capacity;
  for (int l = 0; l < layers; l++) {
    c.k.push_back(alloc({kv_heads, capacity, head_dim}, kv_dtype()));
    c.v.push_back(alloc({kv_heads, capacity, head_dim}, kv_dtype()));
  }
  c.length = alloc({layers, kv_heads}, DType::I32);
  const std::vector<int32_t> zeros(static_cast<size_t>(layers) * kv_heads, 0);
  write(c.length, zeros.data(), zeros.size() * sizeof(int32_t));
  c.position = alloc({layers, kv_heads, capacity}, DType::I32);
  return c;
}

}  // namespace kvlab
