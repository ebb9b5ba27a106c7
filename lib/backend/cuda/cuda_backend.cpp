// The CUDA backend: launchers only; the kernels live in kernels/*.cu.
//
// Activations are fp32, weights and the KV cache bf16, accumulation fp32 everywhere (the
// llama.cpp arrangement). Decode is bound by streaming the weights and the cache, and a
// token's activations are a few KB, so fp32 there costs nothing, while it keeps the residual
// stream, norms, RoPE and softmax inputs in fp32, as the CPU oracle computes them.
// Prefill rounds each matmul input to bf16 once, because the tensor cores (through cuBLAS)
// need both operands in one type.
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "argmax.cuh"
#include "attention.cuh"
#include "attention_scores.cuh"
#include "backend/cuda/cuda_check.h"
#include "convert.cuh"
#include "core/error.h"
#include "embedding.cuh"
#include "kv_append.cuh"
#include "kv_compact.cuh"
#include "kv_demote.cuh"
#include "matmul.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "swiglu.cuh"

namespace kvlab {
namespace {

constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;
// Up to this many queries attention takes the split-K decode kernels, which spread any cache
// length over the whole GPU; beyond it the prefill kernel, which fills it with query tiles.
constexpr int64_t kDecodeMaxQueries = 8;
// Scratch a compaction pass may use; larger caches take more passes.
constexpr size_t kCompactWorkspaceBytes = size_t(32) << 20;
// Host writes up to this size go through pinned staging, so they never wait for the stream.
constexpr size_t kStagedWriteMax = size_t(64) << 10;
constexpr size_t kStagingHalfBytes = size_t(1) << 20;

std::string gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
  return buf;
}

void* device_malloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free = 0, total = 0;
    (void)cudaMemGetInfo(&free, &total);
    fail("CUDA: out of device memory: asked for " + std::to_string(bytes) + " bytes (" + gib(bytes) + "), " +
             std::to_string(free) + " bytes (" + gib(free) + ") free of " + gib(total),
         kExitNoMemory);
  }
  KVLAB_CUDA_CHECK(err);
  return p;
}

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  KVLAB_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

// Device memory shared by a backend's scratch buffers: what they hold counts with the tensors,
// and every regrowth moves `generation`, so recordings that baked in the old address re-record.
struct ScratchState {
  std::shared_ptr<AllocationCounter> counter;
  uint64_t generation = 0;
};

// A device buffer that only grows; for per-call workspaces whose size depends on the shapes.
// Growing waits for the stream, so that no queued kernel still uses the old buffer.
class Scratch {
 public:
  explicit Scratch(ScratchState* state) : state_(state) {}
  ~Scratch() {
    (void)cudaFree(ptr_);
    state_->counter->remove(bytes_);
  }
  void* get(size_t bytes, cudaStream_t stream) {
    if (bytes <= bytes_) return ptr_;
    // A recording's first call runs eagerly and sizes every buffer, so this means misuse.
    if (capturing(stream)) fail("cuda backend: a workspace grew while recording a graph", kExitInternal);
    KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
    KVLAB_CUDA_CHECK(cudaFree(ptr_));
    state_->counter->remove(bytes_);
    ptr_ = nullptr;
    bytes_ = 0;
    const size_t rounded = (bytes + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
    ptr_ = device_malloc(rounded);
    bytes_ = rounded;
    state_->counter->add(bytes_);
    state_->generation++;
    return ptr_;
  }

 private:
  ScratchState* state_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Pinned host memory that small writes are staged through, so that cudaMemcpyAsync neither
// waits for the stream (as it may from pageable memory) nor leaves the caller's buffer in use.
// Two halves: before reuse of a half, an event recorded when the writes moved on from it says
// that its copies are done, which they long are by then.
class PinnedStaging {
 public:
  PinnedStaging() {
    KVLAB_CUDA_CHECK(cudaHostAlloc(&base_, 2 * kStagingHalfBytes, cudaHostAllocDefault));
    for (cudaEvent_t& e : left_) KVLAB_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~PinnedStaging() {
    for (cudaEvent_t e : left_) (void)cudaEventDestroy(e);
    (void)cudaFreeHost(base_);
  }
  // A pinned copy of `bytes` (at most kStagedWriteMax) from `host`, valid for one async copy on `stream`.
  const void* stage(const void* host, size_t bytes, cudaStream_t stream) {
    if (offset_ + bytes > kStagingHalfBytes) {
      KVLAB_CUDA_CHECK(cudaEventRecord(left_[half_], stream));
      used_[half_] = true;
      half_ ^= 1;
      if (used_[half_]) KVLAB_CUDA_CHECK(cudaEventSynchronize(left_[half_]));
      offset_ = 0;
    }
    char* p = static_cast<char*>(base_) + half_ * kStagingHalfBytes + offset_;
    std::memcpy(p, host, bytes);
    offset_ += (bytes + 255) / 256 * 256;
    return p;
  }

 private:
  void* base_ = nullptr;
  cudaEvent_t left_[2] = {};
  bool used_[2] = {false, false};
  int half_ = 0;
  size_t offset_ = 0;
};

// A recorded op sequence: empty (no exec) after the eager first run, then a CUDA graph.
struct CudaRecording final : Recording {
  cudaGraphExec_t exec = nullptr;
  uint64_t generation = 0;  // of the scratch buffers when recorded
  ~CudaRecording() override {
    if (exec) (void)cudaGraphExecDestroy(exec);
  }
};

void require(bool ok, const std::string& what) {
  if (!ok) fail("cuda backend: " + what, kExitInternal);
}
void require_tensor(const Tensor& t, DType dtype, const char* what) {
  require(t.device == Device::CUDA && !t.empty(), std::string(what) + " must be a CUDA tensor");
  require(t.dtype == dtype, std::string(what) + " must be " + dtype_name(dtype) + ", not " + dtype_name(t.dtype));
}

const __nv_bfloat16* bf16(const Tensor& t) { return static_cast<const __nv_bfloat16*>(t.data); }

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index) : device_(device_index) {
    const int count = cuda_visible_devices();
    if (device_index < 0 || device_index >= count)
      fail("CUDA device " + std::to_string(device_index) + " does not exist (" + std::to_string(count) +
           " visible)");
    KVLAB_CUDA_CHECK(cudaSetDevice(device_));
    KVLAB_CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
    KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    KVLAB_CUBLAS_CHECK(cublas().create(&cublas_));
    KVLAB_CUBLAS_CHECK(cublas().set_stream(cublas_, stream_));
    // cuBLAS's workspace is given rather than allocated by it, so a GEMM never mallocs.
    cublas_workspace_ = device_malloc(kCublasWorkspaceBytes);
    KVLAB_CUBLAS_CHECK(cublas().set_workspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes));
    void* flag = nullptr;
    KVLAB_CUDA_CHECK(cudaHostAlloc(&flag, 4 * sizeof(int32_t), cudaHostAllocMapped));
    bad_id_host_ = static_cast<int32_t*>(flag);
    std::memset(bad_id_host_, 0, 4 * sizeof(int32_t));
    void* dev = nullptr;
    KVLAB_CUDA_CHECK(cudaHostGetDevicePointer(&dev, flag, 0));
    bad_id_device_ = static_cast<int32_t*>(dev);
    compact_error_host_ = bad_id_host_ + 3;
    compact_error_device_ = bad_id_device_ + 3;
    scratch_.counter->add(kCublasWorkspaceBytes);
    // KVLAB_CUDA_GRAPH=0 runs recorded sequences eagerly, to measure what graphs gain.
    const char* graphs = std::getenv("KVLAB_CUDA_GRAPH");
    graphs_ = !(graphs && std::string(graphs) == "0");
    staging_ = std::make_unique<PinnedStaging>();
  }

  ~CudaBackend() override {
    (void)cudaStreamSynchronize(stream_);
    staging_.reset();
    (void)cublas().destroy(cublas_);
    (void)cudaFree(cublas_workspace_);
    scratch_.counter->remove(kCublasWorkspaceBytes);
    (void)cudaFreeHost(bad_id_host_);
    (void)cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::CUDA; }
  std::string description() const override {
    int cublas_version = 0;
    (void)cublas().get_version(cublas_, &cublas_version);
    return "cuda:" + std::to_string(device_) + ": " + std::string(prop_.name) + " (sm_" +
           std::to_string(prop_.major) + std::to_string(prop_.minor) + ", " +
           std::to_string(prop_.multiProcessorCount) + " SMs, " + gib(prop_.totalGlobalMem) + "), cuBLAS " +
           std::to_string(cublas_version) + ", bf16 weights and KV, fp32 activations" +
           (graphs_ ? "" : ", CUDA graphs off");
  }
  DType activation_dtype() const override { return DType::F32; }
  DType mlp_scratch_dtype() const override { return DType::BF16; }
  DType kv_dtype() const override { return DType::BF16; }
  DType weight_dtype(DType stored) const override { return stored == DType::I32 ? DType::I32 : DType::BF16; }
  size_t free_memory() const override {
    size_t free = 0, total = 0;
    KVLAB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return free;
  }

  size_t allocated_bytes() const override { return scratch_.counter->current(); }
  size_t peak_allocated_bytes() const override { return scratch_.counter->peak(); }
  void reset_peak() override { scratch_.counter->reset_peak(); }

  // Median over repeats of one event-timed copy of up to 1 GiB (a quarter of what is free at
  // most), after a warm-up; the buffers are not counted as tensors.
  double measure_copy_bandwidth() override {
    size_t free = 0, total = 0;
    KVLAB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    const size_t bytes = std::max<size_t>(size_t(1) << 20, std::min(size_t(1) << 30, free / 4) / 256 * 256);
    void* a = device_malloc(bytes);
    void* b = nullptr;
    try {
      b = device_malloc(bytes);
    } catch (...) {
      (void)cudaFree(a);
      throw;
    }
    cudaEvent_t start, stop;
    KVLAB_CUDA_CHECK(cudaEventCreate(&start));
    KVLAB_CUDA_CHECK(cudaEventCreate(&stop));
    KVLAB_CUDA_CHECK(cudaMemsetAsync(a, 1, bytes, stream_));
    std::vector<float> ms;
    for (int rep = 0; rep < 12; rep++) {
      KVLAB_CUDA_CHECK(cudaEventRecord(start, stream_));
      KVLAB_CUDA_CHECK(cudaMemcpyAsync(rep % 2 ? a : b, rep % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice, stream_));
      KVLAB_CUDA_CHECK(cudaEventRecord(stop, stream_));
      KVLAB_CUDA_CHECK(cudaEventSynchronize(stop));
      float t = 0;
      KVLAB_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
      if (rep >= 2) ms.push_back(t);
    }
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    (void)cudaFree(a);
    (void)cudaFree(b);
    std::sort(ms.begin(), ms.end());
    return 2.0 * double(bytes) / (double(ms[ms.size() / 2]) * 1e-3);
  }

  Tensor alloc(const std::vector<int64_t>& shape, DType dtype) override {
    Tensor t;
    t.shape = shape;
    t.dtype = dtype;
    t.device = Device::CUDA;
    // Rounded up so that every tensor starts 256-byte aligned and an empty one still has an address.
    const size_t bytes = std::max<size_t>(256, (t.bytes() + 255) / 256 * 256);
    void* p = device_malloc(bytes);
    scratch_.counter->add(bytes);
    // The counter is shared with the deleter, so tensors outliving the backend count down safely.
    std::shared_ptr<AllocationCounter> counter = scratch_.counter;
    t.storage = std::shared_ptr<void>(p, [counter, bytes](void* q) {
      counter->remove(bytes);
      (void)cudaFree(q);
    });
    t.data = p;
    return t;
  }

  void upload_weight_into(Tensor& t, const void* host, DType stored) override {
    require_tensor(t, weight_dtype(stored), "weight");
    const size_t n = size_t(t.numel());
    if (t.dtype == stored) {
      write(t, host, t.bytes());
      return;
    }
    std::vector<uint16_t> converted(n);
    const uint16_t* h16 = static_cast<const uint16_t*>(host);
    const float* h32 = static_cast<const float*>(host);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
      converted[i] = f32_to_bf16(stored == DType::F16 ? f16_to_f32(h16[i]) : h32[i]);
    // From pageable memory the copy returns once `converted` is staged, so it may go now.
    write(t, converted.data(), t.bytes());
  }

  void write(Tensor& dst, const void* host, size_t bytes) override {
    KVLAB_ASSERT(dst.device == Device::CUDA && bytes <= dst.bytes());
    require(!capturing(stream_), "write() inside a recorded sequence (write its inputs before it)");
    if (bytes <= kStagedWriteMax) host = staging_->stage(host, bytes, stream_);
    KVLAB_CUDA_CHECK(cudaMemcpyAsync(dst.data, host, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void read(const Tensor& src, void* host, size_t bytes) override {
    KVLAB_ASSERT(src.device == Device::CUDA && bytes <= src.bytes());
    require(!capturing(stream_), "read() inside a recorded sequence");
    KVLAB_CUDA_CHECK(cudaMemcpyAsync(host, src.data, bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  std::vector<float> to_host_f32(const Tensor& t) override {
    std::vector<uint8_t> raw(t.bytes());
    read(t, raw.data(), raw.size());
    std::vector<float> out(size_t(t.numel()));
    convert_to_f32(raw.data(), t.dtype, out.size(), out.data());
    return out;
  }
  void synchronize() override {
    KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    // Errors the kernels could only record (see kernels/embedding.cuh) surface here.
    volatile int32_t* e = bad_id_host_;
    if (e[0]) {
      const int32_t id = e[1], vocab = e[2];
      e[0] = 0;
      fail("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    volatile int32_t* compact_error = compact_error_host_;
    if (*compact_error) {
      *compact_error = 0;
      fail("cuda backend: kv_compact was given a keep list that is not ascending slots below the head's length, "
           "or a count above it",
           kExitInternal);
    }
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    require_tensor(table, DType::BF16, "embedding table");
    require_tensor(ids, DType::I32, "embedding ids");
    require_tensor(out, DType::F32, "embedding output");
    require(out.numel() == ids.numel() * table.cols(), "embedding output shape " + out.shape_string());
    KVLAB_CUDA_CHECK(kernels::embedding(bf16(table), table.rows(), int(table.cols()), ids.ptr<int32_t>(),
                                        ids.numel(), out.ptr<float>(), bad_id_device_, stream_));
  }

  void rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    check_norm(x, weight, out);
    KVLAB_CUDA_CHECK(kernels::rmsnorm(x.ptr<float>(), bf16(weight), eps, out.ptr<float>(),
                                      x.numel() / weight.numel(), int(weight.numel()), stream_));
  }

  // Small n: one GEMV launch for all projections, the norm folded in. Larger n: x normed (or
  // just converted) into bf16 once, then a cuBLAS GEMM per projection.
  void matmuls(const Tensor& x, std::initializer_list<Projection> projections, const InputNorm& norm) override {
    for (const Projection& p : projections) check_matmul(x, *p.w, p.bias, *p.out);
    const int64_t n = x.rows(), in = x.cols();
    if (n == 0) return;
    if (n <= kernels::kGemvMaxRows && projections.size() <= size_t(kernels::kGemvMaxWeights)) {
      kernels::GemvWeight weights[kernels::kGemvMaxWeights];
      int count = 0;
      for (const Projection& p : projections) weights[count++] = gemv_weight(p, p.out->ptr<float>());
      KVLAB_CUDA_CHECK(kernels::gemv(x.ptr<float>(), gemv_norm(x, norm), weights, count, int(n), in,
                                     prop_.multiProcessorCount, stream_));
      return;
    }
    const __nv_bfloat16* xb = gemm_input(x, norm);
    for (const Projection& p : projections) gemm(xb, n, *p.w, p.bias, p.out->data, CUDA_R_32F, p.accumulate);
  }

  void matmul_swiglu(const Tensor& x, const Tensor& gate, const Tensor& up, Tensor& gate_out, Tensor& up_out,
                     Tensor& out, const InputNorm& norm) override {
    check_matmul(x, gate, nullptr, out);
    check_matmul(x, up, nullptr, out);
    const int64_t n = x.rows();
    if (n == 0) return;
    if (n <= kernels::kGemvMaxRows) {
      KVLAB_CUDA_CHECK(kernels::gemv_swiglu(x.ptr<float>(), gemv_norm(x, norm), bf16(gate), bf16(up),
                                            out.ptr<float>(), int(n), gate.rows(), x.cols(), prop_.multiProcessorCount,
                                            stream_));
      return;
    }
    const GateUp g = gate_up(x, gate, up, gate_out, up_out, norm);
    KVLAB_CUDA_CHECK(kernels::swiglu(g.gate, g.up, out.ptr<float>(), out.numel(), stream_));
  }

  // Up to kGemvMaxRows rows: the gated GEMV into an fp32 product of the backend's own (the
  // down GEMV reads fp32), then down's GEMV. Above: gate and up in bf16, their SwiGLU in bf16 in
  // act, which down's GEMM reads.
  void mlp(Tensor& x, const Tensor& gate, const Tensor& up, const Tensor& down, Tensor& gate_out, Tensor& up_out,
           Tensor& act, const InputNorm& norm) override {
    const int64_t n = x.rows(), inter = gate.rows();
    require_tensor(x, DType::F32, "mlp input");
    for (const Tensor* w : {&gate, &up, &down}) require_tensor(*w, DType::BF16, "mlp weight");
    require(gate.cols() == x.cols() && up.rows() == inter && up.cols() == x.cols() && down.rows() == x.cols() &&
                down.cols() == inter,
            "mlp weight shapes " + gate.shape_string() + ", " + up.shape_string() + ", " + down.shape_string());
    require_scratch(act, n, inter, "mlp act");
    if (n == 0) return;
    if (n <= kernels::kGemvMaxRows) {
      auto* product = static_cast<float*>(gemv_product_.get(size_t(n * inter) * sizeof(float), stream_));
      KVLAB_CUDA_CHECK(kernels::gemv_swiglu(x.ptr<float>(), gemv_norm(x, norm), bf16(gate), bf16(up), product,
                                            int(n), inter, x.cols(), prop_.multiProcessorCount, stream_));
      const kernels::GemvWeight w{bf16(down), nullptr, x.ptr<float>(), down.rows(), true};
      KVLAB_CUDA_CHECK(kernels::gemv(product, kernels::GemvNorm{}, &w, 1, int(n), inter,
                                     prop_.multiProcessorCount, stream_));
      return;
    }
    const GateUp g = gate_up(x, gate, up, gate_out, up_out, norm);
    auto* a = static_cast<__nv_bfloat16*>(act.data);
    KVLAB_CUDA_CHECK(kernels::swiglu(g.gate, g.up, a, act.numel(), stream_));
    gemm(a, n, down, nullptr, x.data, CUDA_R_32F, true);
  }

  void rope(Tensor& x, const Tensor& positions, const RopeTable& rope, int head_dim) override {
    check_rope(x, positions, rope, head_dim);
    const int64_t n = positions.numel();
    if (n == 0) return;
    KVLAB_CUDA_CHECK(kernels::rope(x.ptr<float>(), positions.ptr<int32_t>(), rope.inv_freq.ptr<float>(),
                                   rope.attention_scaling, n, int(x.numel() / (n * head_dim)), head_dim, stream_));
  }

  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override {
    require_tensor(gate, DType::F32, "swiglu gate");
    require_tensor(up, DType::F32, "swiglu up");
    require_tensor(out, DType::F32, "swiglu output");
    require(gate.numel() == up.numel() && out.numel() == gate.numel(), "swiglu shapes differ");
    KVLAB_CUDA_CHECK(kernels::swiglu(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), gate.numel(), stream_));
  }

  void kv_append(KVCache& cache, int layer, const Tensor& k, const Tensor& v, const Tensor& positions) override {
    KVLAB_CUDA_CHECK(kernels::kv_append(append_args(cache, layer, k, v, positions), stream_));
  }

  // One launch for a decode step's few tokens, two for a prefill chunk's (kernels/kv_append.cu).
  void rope_kv_append(Tensor& q, Tensor& k, const Tensor& v, const Tensor& rope_positions, const RopeTable& rope_table,
                      int head_dim, KVCache& cache, int layer, const Tensor& positions,
                      const HeadNorms& norms) override {
    if (head_dim != cache.head_dim) {
      Backend::rope_kv_append(q, k, v, rope_positions, rope_table, head_dim, cache, layer, positions, norms);
      return;
    }
    const kernels::KvAppendArgs a = append_args(cache, layer, k, v, positions);
    kernels::RopeArgs r = rope_args(a, q, k, rope_positions, rope_table, head_dim, norms);
    r.q = q.ptr<float>();
    r.q_stride = q.cols();
    KVLAB_CUDA_CHECK(kernels::rope_kv_append(a, r, stream_));
  }

  // A decode step with its attention: attend_appending. Prefill with load_weights' stacked q/k/v
  // weights: one GEMM into a stacked [n, q + 2 kv] scratch, from which the rope_kv_append kernel
  // reads q, k and v. At Llama-3.1-8B's shapes and 1,024 tokens on an H100, q's GEMM takes 58 µs
  // and k's and v's 25 each; all three as one, 80.
  void attention_input(const Tensor& x, const InputNorm& norm, const Projection& q, const Projection& k,
                       const Projection& v, const Tensor& rope_positions, const RopeTable& rope_table, int head_dim,
                       KVCache& cache, int layer, const Tensor& positions, const HeadNorms& norms,
                       const Attend& attend) override {
    const int64_t n = x.rows();
    const bool plain = head_dim == cache.head_dim && !q.accumulate && !k.accumulate && !v.accumulate;
    if (plain && attend.out && n > 0 &&
        attend_appending(x, norm, q, k, v, rope_positions, rope_table, cache, layer, positions, norms, attend)) {
      project_attention(attend);
      return;
    }
    const Tensor w = stacked({q.w, k.w, v.w});
    const Tensor bias = stacked({q.bias, k.bias, v.bias});
    const bool biased = q.bias || k.bias || v.bias;
    if (!plain || n <= kernels::kGemvMaxRows || w.empty() || (biased && bias.empty())) {
      Backend::attention_input(x, norm, q, k, v, rope_positions, rope_table, head_dim, cache, layer, positions, norms,
                               attend);
      return;
    }
    for (const Projection* p : {&q, &k, &v}) check_matmul(x, *p->w, p->bias, *p->out);
    // With o, the prefill kernel's q and output stay in bf16, in the front halves of q.out's
    // and out's bytes (Attend's contract): no fp32 copies of rotated q and k that nothing reads, no
    // conversion of the o GEMM's input (at Llama-3.1-8B's shapes, ~50 MB less traffic a layer
    // for 1,024 tokens; TTFT 8K 1-3 ms less, bench/results/h100-2026-12-07 call 22). Without
    // biases (which cuBLAS adds only in fp32 here), the q/k/v GEMM writes bf16 too, rounded
    // where HF's bf16 projections round.
    const bool block = attend.o && !norms.q && takes_prefill_kernel(cache, layer, n);
    const bool bf16_qkv = block && !biased;
    const int64_t rows = w.rows(), q_rows = q.w->rows(), k_rows = k.w->rows();
    void* out = stacked_qkv_.get(size_t(n * rows) * (bf16_qkv ? 2 : 4), stream_);
    gemm(gemm_input(x, norm), n, w, biased ? &bias : nullptr, out, bf16_qkv ? CUDA_R_16BF : CUDA_R_32F, false);
    kernels::KvAppendArgs a = append_args(cache, layer, *k.out, *v.out, positions);
    kernels::RopeArgs r = rope_args(a, *q.out, *k.out, rope_positions, rope_table, head_dim, norms);
    a.stride = rows;
    r.q_stride = rows;
    if (bf16_qkv) {
      r.q_bf16 = static_cast<const __nv_bfloat16*>(out);
      a.k_bf16 = r.q_bf16 + q_rows;
      a.v_bf16 = a.k_bf16 + k_rows;
      a.k = a.v = nullptr;
    } else {
      r.q = static_cast<const float*>(out);
      a.k = r.q + q_rows;
      a.v = a.k + k_rows;
    }
    if (!block) {
      KVLAB_CUDA_CHECK(kernels::rope_kv_append(a, r, stream_));
      if (attend.out) attention(*q.out, cache, layer, attend.scale, *attend.out);
      project_attention(attend);
      return;
    }
    check_matmul(*attend.out, *attend.o, nullptr, *attend.into);
    kernels::AttentionArgs at = attention_args(*q.out, cache, layer, attend.scale, *attend.out);
    r.q_out = nullptr;
    r.k_out = nullptr;
    r.q_out_bf16 = static_cast<__nv_bfloat16*>(q.out->data);
    KVLAB_CUDA_CHECK(kernels::rope_kv_append(a, r, stream_));
    at.q = nullptr;
    at.out = nullptr;
    at.q_bf16 = r.q_out_bf16;
    at.out_bf16 = static_cast<__nv_bfloat16*>(attend.out->data);
    KVLAB_CUDA_CHECK(kernels::prefill_attention(at, stream_));
    gemm(at.out_bf16, n, *attend.o, nullptr, attend.into->data, CUDA_R_32F, true);
  }

  // A decode step (at most kGemvMaxRows tokens) whose attention has a merge: one GEMV projects
  // q, k and v, rotates q and k and writes k, v and the positions past the cache's lengths as it
  // stores them (kernels::GemvRopeAppend), then decode attention reads them as pending and its
  // merge advances the lengths: rope_kv_append's launch saved. v.out is left unwritten.
  bool attend_appending(const Tensor& x, const InputNorm& norm, const Projection& q, const Projection& k,
                        const Projection& v, const Tensor& rope_positions, const RopeTable& rope_table, KVCache& cache,
                        int layer, const Tensor& positions, const HeadNorms& norms, const Attend& attend) {
    const int64_t n = x.rows(), in = x.cols();
    if (n > kernels::kGemvMaxRows || n > kDecodeMaxQueries || norms.q || rope_table.inv_freq.empty()) return false;
    kernels::AttentionArgs a = attention_args(*q.out, cache, layer, attend.scale, *attend.out);
    kernels::PrunedKeys middle{};
    const kernels::PrunedKeys* pruned = pruned_keys(cache, layer, &middle);
    const kernels::DecodePlan plan = kernels::decode_attention_plan(a, prop_.multiProcessorCount, pruned);
    for (const Projection* p : {&q, &k, &v}) check_matmul(x, *p->w, p->bias, *p->out);
    using Epilogue = kernels::GemvEpilogue;
    const kernels::GemvNorm gn = gemv_norm(x, norm);
    const kernels::GemvWeight weights[] = {gemv_weight(q, q.out->ptr<float>(), Epilogue::kRotate),
                                           gemv_weight(k, k.out->ptr<float>(), Epilogue::kRotateAppendKey),
                                           gemv_weight(v, v.out->ptr<float>(), Epilogue::kAppendValue)};
    if (!kernels::decode_attention_advances(plan) || !kernels::gemv_vectorizes(x.ptr<float>(), gn, weights, 3, in))
      return false;
    const kernels::KvAppendArgs ap = append_args(cache, layer, *k.out, *v.out, positions);
    const int hd = cache.head_dim;
    check_rope_kv(ap, *q.out, *k.out, rope_positions, rope_table, hd);
    kernels::GemvRopeAppend ra;
    ra.head_dim = hd;
    ra.rope_positions = rope_positions.ptr<int32_t>();
    ra.inv_freq = rope_table.inv_freq.ptr<float>();
    ra.attention_scaling = rope_table.attention_scaling;
    ra.positions = ap.positions;
    ra.cache_k = ap.cache_k;
    ra.cache_v = ap.cache_v;
    ra.cache_position = ap.cache_position;
    ra.length = ap.length;
    ra.capacity = ap.capacity;
    KVLAB_CUDA_CHECK(
        kernels::gemv(x.ptr<float>(), gn, weights, 3, int(n), in, prop_.multiProcessorCount, stream_, &ra));
    a.pending = int(n);
    void* workspace = attention_partial_.get(plan.workspace_bytes, stream_);
    KVLAB_CUDA_CHECK(kernels::decode_attention(a, plan, workspace, stream_, pruned));
    return true;
  }

  // The layer's LeanK middle region as the decode kernels take it, in *p; null without one.
  const kernels::PrunedKeys* pruned_keys(const KVCache& cache, int layer, kernels::PrunedKeys* p) {
    const ChannelPrunedKV& mid = cache.pruned;
    if (mid.empty()) return nullptr;
    const int hd = cache.head_dim;
    require(kernels::decode_attention_supports_pruned(hd, cache.kv_heads),
            "attention: a LeanK middle region needs head_dim 64 or 128 and at most " +
                std::to_string(kernels::kMaxPrunedHeads) + " KV heads on the cuda backend");
    const int64_t lh = int64_t(layer) * cache.kv_heads;
    p->k = mid.k[size_t(layer)].empty() ? nullptr : bf16(mid.k[size_t(layer)]);
    p->v = mid.v[size_t(layer)].empty() ? nullptr : bf16(mid.v[size_t(layer)]);
    p->length = mid.length.ptr<int32_t>() + lh;
    p->kept = mid.kept.ptr<int32_t>() + lh;
    p->channels = mid.channels.ptr<int32_t>() + lh * hd;
    p->k_offset = mid.k_offset.ptr<int32_t>() + lh;
    p->v_row = mid.v_row.ptr<int32_t>() + lh;
    p->capacity = mid.capacity;
    p->host_kept = mid.host_kept.data() + lh;
    return p;
  }

  // The arguments of attention(q, cache, layer, scale, out), checked.
  kernels::AttentionArgs attention_args(const Tensor& q, const KVCache& cache, int layer, float scale, Tensor& out) {
    KVLAB_ASSERT(layer >= 0 && layer < cache.layers);
    require_tensor(q, DType::F32, "attention q");
    require_tensor(out, DType::F32, "attention output");
    require_tensor(cache.k[size_t(layer)], DType::BF16, "KV cache");
    const int hd = cache.head_dim;
    require(q.cols() % hd == 0 && out.numel() == q.numel(), "attention q/out shape " + q.shape_string());
    kernels::AttentionArgs a;
    a.q = q.ptr<float>();
    a.k = bf16(cache.k[size_t(layer)]);
    a.v = bf16(cache.v[size_t(layer)]);
    a.length = cache.length.ptr<int32_t>() + int64_t(layer) * cache.kv_heads;
    a.out = out.ptr<float>();
    a.n = q.rows();
    a.q_heads = int(q.cols() / hd);
    a.kv_heads = cache.kv_heads;
    a.head_dim = hd;
    a.capacity = cache.capacity;
    a.scale = scale;
    require(a.q_heads % a.kv_heads == 0, "attention: q heads must be a multiple of KV heads");
    return a;
  }

  void attention(const Tensor& q, const KVCache& cache, int layer, float scale, Tensor& out) override {
    kernels::AttentionArgs a = attention_args(q, cache, layer, scale, out);
    if (a.n == 0) return;
    const int hd = cache.head_dim;
    if (takes_prefill_kernel(cache, layer, a.n)) {
      KVLAB_CUDA_CHECK(kernels::prefill_attention(a, stream_));
      return;
    }
    if (!kernels::decode_attention_supports(hd))
      fail("cuda backend: head_dim " + std::to_string(hd) + " is not supported (a multiple of 8 up to 256 is)");
    require(a.n <= 65535, "attention: at most 65535 queries per call on this head_dim");
    kernels::PrunedKeys middle{};
    const kernels::PrunedKeys* pruned = pruned_keys(cache, layer, &middle);
    const kernels::DecodePlan plan = kernels::decode_attention_plan(a, prop_.multiProcessorCount, pruned);
    void* workspace = plan.workspace_bytes ? attention_partial_.get(plan.workspace_bytes, stream_) : nullptr;
    KVLAB_CUDA_CHECK(kernels::decode_attention(a, plan, workspace, stream_, pruned));
  }

  // Whether attention() of n queries runs the prefill kernel. It knows no middle region: it
  // serves a prompt before anything is demoted (the host mirror says so); later, only the split-K
  // kernels see the middle.
  static bool takes_prefill_kernel(const KVCache& cache, int layer, int64_t n) {
    const ChannelPrunedKV& mid = cache.pruned;
    const bool middle_empty =
        mid.empty() || std::all_of(mid.host_length.begin() + int64_t(layer) * cache.kv_heads,
                                   mid.host_length.begin() + int64_t(layer + 1) * cache.kv_heads,
                                   [](int32_t len) { return len == 0; });
    return n > kDecodeMaxQueries && kernels::prefill_attention_supports(cache.head_dim) && middle_empty;
  }

  void kv_demote(KVCache& cache, int layer, const Tensor& count) override {
    KVLAB_ASSERT(layer >= 0 && layer < cache.layers);
    ChannelPrunedKV& mid = cache.pruned;
    require(!mid.empty(), "kv_demote: the cache has no middle region");
    require_tensor(count, DType::I32, "kv_demote count");
    require(count.numel() == cache.kv_heads, "kv_demote count shape " + count.shape_string());
    const int64_t lh = int64_t(layer) * cache.kv_heads;
    kernels::KvDemoteArgs a{};
    a.k = bf16(cache.k[size_t(layer)]);
    a.v = bf16(cache.v[size_t(layer)]);
    a.position = cache.position.ptr<int32_t>() + lh * cache.capacity;
    a.mid_k = mid.k[size_t(layer)].empty() ? nullptr : static_cast<__nv_bfloat16*>(mid.k[size_t(layer)].data);
    a.mid_v = mid.v[size_t(layer)].empty() ? nullptr : static_cast<__nv_bfloat16*>(mid.v[size_t(layer)].data);
    a.mid_position = mid.position.ptr<int32_t>() + lh * mid.capacity;
    a.mid_length = mid.length.ptr<int32_t>() + lh;
    a.kept = mid.kept.ptr<int32_t>() + lh;
    a.channels = mid.channels.ptr<int32_t>() + lh * cache.head_dim;
    a.k_offset = mid.k_offset.ptr<int32_t>() + lh;
    a.v_row = mid.v_row.ptr<int32_t>() + lh;
    a.count = count.ptr<int32_t>();
    a.kv_heads = cache.kv_heads;
    a.head_dim = cache.head_dim;
    a.capacity = cache.capacity;
    a.mid_capacity = mid.capacity;
    a.front = mid.front.ptr<int32_t>() + lh;
    if (!mid.score.empty()) {
      require_tensor(cache.score, DType::F32, "KV cache scores");
      a.score = cache.score.ptr<float>() + lh * cache.capacity;
      a.mid_score = mid.score.ptr<float>() + lh * mid.capacity;
    }
    KVLAB_CUDA_CHECK(kernels::kv_demote(a, stream_));
  }

  void accumulate_attention(const Tensor& q, KVCache& cache, int layer, float scale, int first_query) override {
    KVLAB_ASSERT(layer >= 0 && layer < cache.layers);
    require_tensor(q, DType::F32, "accumulate_attention q");
    require_tensor(cache.k[size_t(layer)], DType::BF16, "KV cache");
    require_tensor(cache.score, DType::F32, "KV cache scores");
    const int hd = cache.head_dim;
    require(q.cols() % hd == 0, "accumulate_attention q shape " + q.shape_string());
    require(kernels::attention_scores_supports(hd), "accumulate_attention: head_dim " + std::to_string(hd) +
                                                        " is not supported (a multiple of 8 up to 256 is)");
    kernels::AttentionScoreArgs a{};
    a.q = q.ptr<float>();
    a.k = bf16(cache.k[size_t(layer)]);
    a.length = cache.length.ptr<int32_t>() + int64_t(layer) * cache.kv_heads;
    a.score = cache.score.ptr<float>() + int64_t(layer) * cache.kv_heads * cache.capacity;
    a.n = q.rows();
    a.first_query = first_query;
    a.q_heads = int(q.cols() / hd);
    a.kv_heads = cache.kv_heads;
    a.head_dim = hd;
    a.capacity = cache.capacity;
    a.scale = scale;
    const ChannelPrunedKV& mid = cache.pruned;
    if (!mid.empty() && !mid.k[size_t(layer)].empty()) {
      require_tensor(mid.score, DType::F32, "KV cache middle scores");
      const int64_t lh = int64_t(layer) * cache.kv_heads;
      a.mid_k = bf16(mid.k[size_t(layer)]);
      a.mid_length = mid.length.ptr<int32_t>() + lh;
      a.kept = mid.kept.ptr<int32_t>() + lh;
      a.channels = mid.channels.ptr<int32_t>() + lh * hd;
      a.k_offset = mid.k_offset.ptr<int32_t>() + lh;
      a.mid_score = mid.score.ptr<float>() + lh * mid.capacity;
      a.mid_capacity = mid.capacity;
    }
    require(a.q_heads % a.kv_heads == 0, "accumulate_attention: q heads must be a multiple of KV heads");
    require(first_query >= 0, "accumulate_attention: first_query must not be negative");
    if (first_query >= a.n) return;
    const kernels::AttentionScorePlan plan = kernels::attention_scores_plan(a, prop_.multiProcessorCount);
    void* workspace = score_partial_.get(plan.workspace_bytes, stream_);
    KVLAB_CUDA_CHECK(kernels::accumulate_attention_scores(a, plan, workspace, stream_));
  }

  void kv_compact(KVCache& cache, int layer, const Tensor& keep, const Tensor& count,
                  const CompactKeys& keys) override {
    KVLAB_ASSERT(layer >= 0 && layer < cache.layers);
    const ChannelPrunedKV& mid = cache.pruned;
    require(!keys.middle || !mid.empty(), "kv_compact: the cache has no middle region");
    const int capacity = keys.middle ? mid.capacity : cache.capacity;
    require_tensor(cache.k[size_t(layer)], DType::BF16, "KV cache");
    require_tensor(keep, DType::I32, "kv_compact keep");
    require_tensor(count, DType::I32, "kv_compact count");
    require(keep.shape.size() == 2 && (keep.dim(0) == cache.kv_heads || keep.dim(0) == 1) && keep.dim(1) >= 1 &&
                keep.dim(1) <= capacity && count.numel() == cache.kv_heads,
            "kv_compact keep/count shape " + keep.shape_string() + " / " + count.shape_string());
    require(kernels::kv_compact_supports(cache.head_dim), "kv_compact: head_dim must be even");
    const int64_t lh = int64_t(layer) * cache.kv_heads, head_slots = lh * capacity;
    kernels::KvCompactArgs a{};
    if (keys.middle) {
      a.k = mid.k[size_t(layer)].empty() ? nullptr : static_cast<__nv_bfloat16*>(mid.k[size_t(layer)].data);
      a.v = mid.v[size_t(layer)].empty() ? nullptr : static_cast<__nv_bfloat16*>(mid.v[size_t(layer)].data);
      a.position = mid.position.ptr<int32_t>() + head_slots;
      a.length = mid.length.ptr<int32_t>() + lh;
      a.width = mid.kept.ptr<int32_t>() + lh;
      a.k_offset = mid.k_offset.ptr<int32_t>() + lh;
      a.channels = mid.channels.ptr<int32_t>() + lh * cache.head_dim;
      a.v_row = mid.v_row.ptr<int32_t>() + lh;
      if (!mid.score.empty()) a.score = mid.score.ptr<float>() + head_slots;
    } else {
      a.k = static_cast<__nv_bfloat16*>(cache.k[size_t(layer)].data);
      a.v = static_cast<__nv_bfloat16*>(cache.v[size_t(layer)].data);
      a.position = cache.position.ptr<int32_t>() + head_slots;
      a.length = cache.length.ptr<int32_t>() + lh;
      if (!cache.score.empty()) {
        require_tensor(cache.score, DType::F32, "KV cache scores");
        a.score = cache.score.ptr<float>() + head_slots;
      }
    }
    a.keep = keep.ptr<int32_t>();
    a.keep_width = int(keep.dim(1));
    a.keep_stride = keep.dim(0) == 1 ? 0 : a.keep_width;
    a.count = count.ptr<int32_t>();
    if (keys.renumber) {
      require_tensor(keys.renumber->inv_freq, DType::F32, "kv_compact inv_freq");
      require(keys.renumber->inv_freq.numel() == cache.head_dim / 2, "kv_compact inv_freq must have head_dim/2 elements");
      a.inv_freq = keys.renumber->inv_freq.ptr<float>();
    }
    if (keys.shift) {
      require_tensor(*keys.shift, DType::I32, "kv_compact shift");
      require(keys.shift->numel() == 2 * int64_t(cache.kv_heads), "kv_compact shift shape " + keys.shift->shape_string());
      a.shift = keys.shift->ptr<int32_t>();
    }
    a.error = compact_error_device_;
    a.kv_heads = cache.kv_heads;
    a.head_dim = cache.head_dim;
    a.capacity = capacity;
    const kernels::KvCompactPlan plan =
        kernels::kv_compact_plan(cache.kv_heads, cache.head_dim, capacity, kCompactWorkspaceBytes);
    void* workspace = compact_scratch_.get(plan.workspace_bytes, stream_);
    KVLAB_CUDA_CHECK(kernels::kv_compact(a, plan, workspace, stream_));
  }

  void capture_or_replay(std::unique_ptr<Recording>& slot, const std::function<void()>& ops) override {
    if (!graphs_) {
      ops();
      return;
    }
    if (!slot) {
      // Eager first: it sizes every workspace, so that nothing allocates while recording.
      slot = std::make_unique<CudaRecording>();
      ops();
      return;
    }
    auto* r = dynamic_cast<CudaRecording*>(slot.get());
    require(r != nullptr, "capture_or_replay: the recording belongs to another backend");
    if (!r->exec || r->generation != scratch_.generation) record(*r, ops);
    KVLAB_CUDA_CHECK(cudaGraphLaunch(r->exec, stream_));
  }

  void argmax(const Tensor& logits, Tensor& out) override {
    require_tensor(logits, DType::F32, "argmax logits");
    require_tensor(out, DType::I32, "argmax output");
    require(out.numel() == logits.rows(), "argmax output shape " + out.shape_string());
    void* workspace = argmax_partial_.get(kernels::argmax_workspace_bytes(logits.rows(), logits.cols()), stream_);
    KVLAB_CUDA_CHECK(
        kernels::argmax(logits.ptr<float>(), logits.rows(), logits.cols(), out.ptr<int32_t>(), workspace, stream_));
  }

 private:
  void record(CudaRecording& r, const std::function<void()>& ops) {
    // Relaxed: the launchers' cudaFuncSetAttribute and occupancy queries are fine to call.
    KVLAB_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
    cudaGraph_t graph = nullptr;
    try {
      ops();
    } catch (...) {
      (void)cudaStreamEndCapture(stream_, &graph);
      if (graph) (void)cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      throw;
    }
    KVLAB_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    if (r.exec) {
      // Same topology with new addresses (a workspace moved): update in place when CUDA can.
      cudaGraphExecUpdateResultInfo info{};
      if (cudaGraphExecUpdate(r.exec, graph, &info) != cudaSuccess) {
        (void)cudaGetLastError();
        (void)cudaGraphExecDestroy(r.exec);
        r.exec = nullptr;
      }
    }
    const cudaError_t err = r.exec ? cudaSuccess : cudaGraphInstantiate(&r.exec, graph, 0);
    (void)cudaGraphDestroy(graph);
    KVLAB_CUDA_CHECK(err);
    r.generation = scratch_.generation;
  }

  void check_matmul(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& out) {
    require_tensor(x, DType::F32, "matmul input");
    require_tensor(w, DType::BF16, "matmul weight");
    require_tensor(out, DType::F32, "matmul output");
    KVLAB_ASSERT(x.cols() == w.cols() && out.cols() == w.rows() && out.rows() == x.rows());
    if (bias) {
      require_tensor(*bias, DType::BF16, "matmul bias");
      require(bias->numel() == w.rows(), "matmul bias shape " + bias->shape_string());
    }
  }

  // x, normed first when norm has a weight, in bf16 for cuBLAS, in the gemm input scratch.
  const __nv_bfloat16* gemm_input(const Tensor& x, const InputNorm& norm) {
    const int64_t count = x.numel();
    auto* xb = static_cast<__nv_bfloat16*>(gemm_input_.get(size_t(count) * 2, stream_));
    if (const Tensor* weight = input_norm_weight(x, norm)) {
      check_norm(x, *weight, x);
      KVLAB_CUDA_CHECK(kernels::rmsnorm(x.ptr<float>(), bf16(*weight), norm.eps, xb, x.rows(), int(x.cols()), stream_));
    } else {
      KVLAB_CUDA_CHECK(kernels::convert_f32_to_bf16(x.ptr<float>(), xb, count, stream_));
    }
    return xb;
  }

  void require_scratch(const Tensor& t, int64_t rows, int64_t cols, const char* what) {
    require_tensor(t, DType::BF16, what);
    require(t.rows() == rows && t.cols() == cols, std::string(what) + " shape " + t.shape_string());
  }

  // Prefill's gate and up projections, rounded to bf16 as HF's bf16 models have them, into the
  // bf16 scratch gate_out and up_out; when the weights are stacked and up_out follows gate_out
  // in one allocation (the transformer's workspace), as one batched GEMM (ncu, each kernel
  // alone: 278 µs against 306 for two at Llama-3.1-8B's shapes and 1,024 tokens on an H100).
  struct GateUp {
    __nv_bfloat16* gate;
    __nv_bfloat16* up;
  };
  GateUp gate_up(const Tensor& x, const Tensor& gate, const Tensor& up, Tensor& gate_out, Tensor& up_out,
                 const InputNorm& norm) {
    const int64_t n = x.rows(), inter = gate.rows();  // both callers checked gate's and up's shapes
    require_scratch(gate_out, n, inter, "gate scratch");
    require_scratch(up_out, n, inter, "up scratch");
    const __nv_bfloat16* xb = gemm_input(x, norm);
    auto* g = static_cast<__nv_bfloat16*>(gate_out.data);
    auto* u = static_cast<__nv_bfloat16*>(up_out.data);
    if (!stacked({&gate, &up}).empty() && gate_out.storage == up_out.storage && u > g) {
      gemm(xb, n, gate, nullptr, g, CUDA_R_16BF, false, 2, u - g);
      return {g, u};
    }
    gemm(xb, n, gate, nullptr, g, CUDA_R_16BF, false);
    gemm(xb, n, up, nullptr, u, CUDA_R_16BF, false);
    return {g, u};
  }

  // out [n, rows(w)] (fp32 or bf16) = xb [n, cols(w)] · w^T (+ bias, fp32 only) through cuBLAS;
  // with accumulate out += it. batch > 1: that many products in one launch, of the matrices
  // stacked after w (each rows(w) * cols(w) elements on), into outputs out_stride elements apart.
  void gemm(const __nv_bfloat16* xb, int64_t n, const Tensor& w, const Tensor* bias, void* out,
            cudaDataType out_type, bool accumulate, int batch = 1, int64_t out_stride = 0) {
    KVLAB_ASSERT(!bias || (out_type == CUDA_R_32F && batch == 1));
    const int64_t in = w.cols(), outf = w.rows();
    // Row-major out[n, o] = x w^T is column-major out^T[o, n] = w^T(col-major [in, o])^T x^T.
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    if (batch == 1) {
      KVLAB_CUBLAS_CHECK(cublas().gemm_ex(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(outf), int(n), int(in), &one, w.data,
                                         CUDA_R_16BF, int(in), xb, CUDA_R_16BF, int(in), &beta, out, out_type,
                                         int(outf), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
      KVLAB_CUBLAS_CHECK(cublas().gemm_strided_batched_ex(
          cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(outf), int(n), int(in), &one, w.data, CUDA_R_16BF, int(in),
          outf * in, xb, CUDA_R_16BF, int(in), 0, &beta, out, out_type, int(outf), out_stride, batch,
          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (bias) KVLAB_CUDA_CHECK(kernels::add_bias(static_cast<float*>(out), bf16(*bias), n, outf, stream_));
  }

  void check_rope(const Tensor& x, const Tensor& positions, const RopeTable& rope, int head_dim) {
    require_tensor(x, DType::F32, "rope input");
    require_tensor(positions, DType::I32, "rope positions");
    require_tensor(rope.inv_freq, DType::F32, "rope inv_freq");
    require(head_dim % 2 == 0 && rope.inv_freq.numel() == head_dim / 2, "rope inv_freq must have head_dim/2 elements");
    const int64_t n = positions.numel();
    require(n == 0 || x.numel() % (n * head_dim) == 0, "rope input shape " + x.shape_string());
  }

  kernels::KvAppendArgs append_args(KVCache& cache, int layer, const Tensor& k, const Tensor& v,
                                    const Tensor& positions) {
    KVLAB_ASSERT(layer >= 0 && layer < cache.layers);
    require_tensor(k, DType::F32, "kv_append k");
    require_tensor(v, DType::F32, "kv_append v");
    require_tensor(positions, DType::I32, "kv_append positions");
    require_tensor(cache.k[size_t(layer)], DType::BF16, "KV cache");
    const int64_t n = positions.numel();
    const int64_t row = int64_t(cache.kv_heads) * cache.head_dim;
    require(k.numel() == n * row && v.numel() == n * row, "kv_append k/v shape " + k.shape_string());
    kernels::KvAppendArgs a;
    a.k = k.ptr<float>();
    a.v = v.ptr<float>();
    a.stride = row;
    a.positions = positions.ptr<int32_t>();
    a.cache_k = static_cast<__nv_bfloat16*>(cache.k[size_t(layer)].data);
    a.cache_v = static_cast<__nv_bfloat16*>(cache.v[size_t(layer)].data);
    a.cache_position = cache.position.ptr<int32_t>() + int64_t(layer) * cache.kv_heads * cache.capacity;
    a.length = cache.length.ptr<int32_t>() + int64_t(layer) * cache.kv_heads;
    a.n = n;
    a.kv_heads = cache.kv_heads;
    a.head_dim = cache.head_dim;
    a.capacity = cache.capacity;
    return a;
  }

  // The rotated q_out and k_out of a's tokens (whose shape append_args checked as a's keys),
  // checked against the rope positions and table.
  void check_rope_kv(const kernels::KvAppendArgs& a, const Tensor& q_out, const Tensor& k_out,
                     const Tensor& rope_positions, const RopeTable& rope_table, int head_dim) {
    check_rope(q_out, rope_positions, rope_table, head_dim);
    check_rope(k_out, rope_positions, rope_table, head_dim);
    require(rope_positions.numel() == a.n, "rope_kv_append: rope positions and positions differ in count");
  }

  // The rope_kv_append kernel's arguments besides a, checked: q and k rotated into q_out and
  // k_out; the caller points r.q (or r.q_bf16) at the queries and sets r.q_stride.
  kernels::RopeArgs rope_args(const kernels::KvAppendArgs& a, Tensor& q_out, Tensor& k_out,
                              const Tensor& rope_positions, const RopeTable& rope_table, int head_dim,
                              const HeadNorms& norms) {
    const int64_t n = a.n;
    if (norms.q) {
      require_tensor(*norms.q, DType::BF16, "q head norm weight");
      require_tensor(*norms.k, DType::BF16, "k head norm weight");
      require(norms.q->numel() == head_dim && norms.k->numel() == head_dim, "head norm weights are not head_dim long");
    }
    check_rope_kv(a, q_out, k_out, rope_positions, rope_table, head_dim);
    kernels::RopeArgs r;
    r.q_out = q_out.ptr<float>();
    r.k_out = k_out.ptr<float>();
    r.q_heads = n == 0 ? 0 : int(q_out.numel() / (n * head_dim));
    r.positions = rope_positions.ptr<int32_t>();
    r.inv_freq = rope_table.inv_freq.ptr<float>();
    r.attention_scaling = rope_table.attention_scaling;
    if (norms.q) {
      r.q_norm = bf16(*norms.q);
      r.k_norm = bf16(*norms.k);
      r.norm_eps = norms.eps;
    }
    return r;
  }

  // The tensors as one [sum of rows, ...] when each is the slice of one allocation that follows
  // the one before it (load_weights stacks q, k, v and gate, up so); empty otherwise.
  static Tensor stacked(std::initializer_list<const Tensor*> parts) {
    Tensor all;
    for (const Tensor* p : parts) {
      if (!p || p->empty()) return {};
      if (all.empty()) {
        all = *p;
        continue;
      }
      const bool follows = p->storage == all.storage && p->dtype == all.dtype && p->data == end_of(all) &&
                           std::equal(p->shape.begin() + 1, p->shape.end(), all.shape.begin() + 1, all.shape.end());
      if (!follows) return {};
      all.shape[0] += p->shape[0];
    }
    return all;
  }
  static const void* end_of(const Tensor& t) { return static_cast<const char*>(t.data) + t.bytes(); }

  // A projection as the decode GEMV takes it, its rows written to out (through the epilogue).
  static kernels::GemvWeight gemv_weight(const Projection& p, float* out,
                                         kernels::GemvEpilogue epilogue = kernels::GemvEpilogue::kStore) {
    return {bf16(*p.w), p.bias ? bf16(*p.bias) : nullptr, out, p.w->rows(), p.accumulate, epilogue};
  }

  kernels::GemvNorm gemv_norm(const Tensor& x, const InputNorm& norm) {
    const Tensor* weight = input_norm_weight(x, norm);
    if (!weight) return {nullptr, 0.0f};
    check_norm(x, *weight, x);
    return {bf16(*weight), norm.eps};
  }

  void check_norm(const Tensor& x, const Tensor& weight, const Tensor& out) {
    require_tensor(x, DType::F32, "rmsnorm input");
    require_tensor(weight, DType::BF16, "rmsnorm weight");
    require_tensor(out, DType::F32, "rmsnorm output");
    require(x.numel() % weight.numel() == 0 && out.numel() == x.numel(), "rmsnorm shape " + x.shape_string());
  }

  int device_;
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  int32_t* bad_id_host_ = nullptr;    // {flag, id, vocab, -}: pinned, mapped into the device
  int32_t* bad_id_device_ = nullptr;  // the same memory as the device sees it
  int32_t* compact_error_host_ = nullptr;    // kv_compact's error flag: the block's 4th word
  int32_t* compact_error_device_ = nullptr;
  bool graphs_ = true;                // capture_or_replay records CUDA graphs
  ScratchState scratch_{std::make_shared<AllocationCounter>(), 0};
  Scratch gemm_input_{&scratch_};         // bf16 copy of a prefill matmul's input
  Scratch gemv_product_{&scratch_};       // the MLP's fp32 SwiGLU product of a few rows (mlp)
  Scratch stacked_qkv_{&scratch_};        // prefill's q, k and v from one GEMM (attention_input)
  Scratch attention_partial_{&scratch_};  // split-K partial results of decode attention
  Scratch score_partial_{&scratch_};      // row statistics of accumulate_attention
  Scratch compact_scratch_{&scratch_};    // kv_compact's staging rows
  Scratch argmax_partial_{&scratch_};     // each span's best of a row (argmax)
  std::unique_ptr<PinnedStaging> staging_;
};

}  // namespace

int cuda_visible_devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::string cuda_unavailable_reason() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return cudaGetErrorString(err);
  }
  return n == 0 ? "no device visible" : "";
}

std::unique_ptr<Backend> make_cuda_backend(int device_index) { return std::make_unique<CudaBackend>(device_index); }

}  // namespace kvlab
