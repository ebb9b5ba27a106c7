#pragma once
// The operations the transformer needs, implemented once per device (cpu/, cuda/).
// The model is written against this interface only; the CPU backend is the oracle the
// CUDA backend is tested against.
//
// Conventions: tensors are row-major; a "matrix" is [rows, cols] over the last dim.
// Activations are in activation_dtype(); weights in whatever upload_weight() chose.
// Ops are asynchronous on devices that queue work; read() and to_host_f32() synchronise.
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "backend/kv_cache.h"
#include "backend/tensor.h"

namespace kvlab {

// Rotary embedding as HF computes it: angle = position * inv_freq[i] (fp32), rotate_half
// pairs channel i with i + head_dim/2, cos and sin scaled by attention_scaling.
struct RopeTable {
  Tensor inv_freq;  // F32 [head_dim / 2], on the backend
  float attention_scaling = 1.0f;
};

// What Backend::kv_compact moves, and how it treats the keys it moves.
struct CompactKeys {
  // LeanK's middle region (cache.pruned: keys of the kept channels) instead of the full region.
  bool middle = false;
  // Keys sit rotated at their index in the cache's age order (StreamingLLM's and LaCache's
  // position shift): a moved key is re-rotated by its new index minus its old one. In the middle
  // the rotated pairs are kept channels c and c + head_dim / 2 (a RoPE-pair-closed mask).
  const RopeTable* renumber = nullptr;
  // With a middle region the age order interleaves the regions (kv_cache.h), so a slot's index
  // there is its slot plus an offset that a compaction can change: I32 [kv_heads, 2] of (from,
  // extra) per head: a moved key whose new slot is at least `from` turns by `extra` more.
  const Tensor* shift = nullptr;
};

// Device work a backend recorded for replay (a CUDA graph); opaque to its callers, who own it.
class Recording {
 public:
  virtual ~Recording() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual std::string description() const = 0;   // e.g. "cpu: Eigen 3.4, 2 threads"
  virtual DType activation_dtype() const = 0;
  virtual DType kv_dtype() const = 0;
  virtual DType weight_dtype(DType stored) const = 0;  // what upload_weight turns `stored` into
  virtual size_t free_memory() const = 0;              // bytes it can still allocate
  // Bytes held by live tensors and workspaces now, and the most held since the last reset_peak().
  virtual size_t allocated_bytes() const = 0;
  virtual size_t peak_allocated_bytes() const = 0;
  virtual void reset_peak() = 0;
  // Bytes read + written per second by a large device-to-device copy: the bandwidth roofline.
  virtual double measure_copy_bandwidth() = 0;

  // Memory.
  virtual Tensor alloc(const std::vector<int64_t>& shape, DType dtype) = 0;
  // Copies a host tensor (checkpoint dtype) into backend memory as weight_dtype(stored): into a
  // new allocation, or into dst (of that dtype; a slice of a larger one, for stacked weights).
  Tensor upload_weight(const void* host, DType stored, const std::vector<int64_t>& shape);
  virtual void upload_weight_into(Tensor& dst, const void* host, DType stored) = 0;
  virtual void write(Tensor& dst, const void* host, size_t bytes) = 0;  // same dtype, host -> backend
  virtual void read(const Tensor& src, void* host, size_t bytes) = 0;   // backend -> host, synchronises
  virtual std::vector<float> to_host_f32(const Tensor& t) = 0;
  virtual void synchronize() = 0;

  // A KV cache of `capacity` slots per (layer, head) in kv_dtype(), lengths zero.
  KVCache alloc_kv_cache(int layers, int kv_heads, int head_dim, int capacity);

  // ids: I32 [n]; table: [vocab, hidden]; out: [n, hidden].
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  // out = x / rms(x) * weight over each row; weight has cols(x) elements.
  virtual void rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // One product of a matmul: out[n, o] = x[n, i] · w[o, i]^T (+ bias[o]), or with accumulate
  // out += it, the pre-norm transformer's residual join. out may be F32 when activations are
  // not (logits), and never aliases x.
  struct Projection {
    const Tensor* w;
    const Tensor* bias;  // may be null
    Tensor* out;
    bool accumulate = false;
  };
  // RMSNorm folded into the matmuls that read it: their input is rmsnorm(x) * weight. A backend
  // that normalises apart in the activation dtype (the CPU one) writes the normed rows to `normed`.
  struct InputNorm {
    const Tensor* weight = nullptr;  // null: x as it is
    float eps = 0.0f;
    Tensor* normed = nullptr;  // [rows(x), cols(x)]
  };
  // Every projection of one input (q, k and v): a backend may run them as one pass over x.
  virtual void matmuls(const Tensor& x, std::initializer_list<Projection> projections, const InputNorm& norm) = 0;
  void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) { matmuls(x, {{&w, bias, &out}}, {}); }
  // out = silu(x · gate^T) * (x · up^T); gate_out and up_out are scratch [n, rows(gate)] in
  // mlp_scratch_dtype() that a backend may use as it likes or skip (the fused CUDA GEMV writes
  // only out).
  virtual void matmul_swiglu(const Tensor& x, const Tensor& gate, const Tensor& up, Tensor& gate_out, Tensor& up_out,
                             Tensor& out, const InputNorm& norm);
  // A layer's MLP with its residual join: x += (silu(x · gate^T) * (x · up^T)) · down^T, x
  // normed by `norm` on the way in. gate_out, up_out and act are scratch [n, rows(gate)] in
  // mlp_scratch_dtype() that a backend may use as it likes; with up_out after gate_out in one
  // allocation, both projections may run as one batched product.
  virtual void mlp(Tensor& x, const Tensor& gate, const Tensor& up, const Tensor& down, Tensor& gate_out,
                   Tensor& up_out, Tensor& act, const InputNorm& norm);
  // The dtype of the MLP's scratch: the activation dtype, or narrower for a backend whose
  // products round there anyway (the CUDA prefill keeps gate, up and their SwiGLU in bf16, as
  // HF's bf16 models do).
  virtual DType mlp_scratch_dtype() const { return activation_dtype(); }
  // In place on x [n, heads * head_dim]; positions: I32 [n].
  virtual void rope(Tensor& x, const Tensor& positions, const RopeTable& rope, int head_dim) = 0;
  // out = silu(gate) * up, elementwise.
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) = 0;

  // Appends n new tokens to every head of `layer`: k, v [n, kv_heads * head_dim], positions I32 [n].
  // The caller guarantees length + n <= capacity for every head.
  virtual void kv_append(KVCache& cache, int layer, const Tensor& k, const Tensor& v,
                         const Tensor& positions) = 0;
  // Qwen3's RMSNorm of every q and k head before RoPE: weights [head_dim]; null: none.
  struct HeadNorms {
    const Tensor* q = nullptr;
    const Tensor* k = nullptr;
    float eps = 0.0f;
  };
  // The head norms (when given), rope(q) and rope(k) by rope_positions, then kv_append(cache,
  // layer, k, v, positions): the steps between a layer's projections and its attention, which a
  // backend may do in one pass.
  virtual void rope_kv_append(Tensor& q, Tensor& k, const Tensor& v, const Tensor& rope_positions,
                              const RopeTable& rope, int head_dim, KVCache& cache, int layer,
                              const Tensor& positions, const HeadNorms& norms);
  // With `out`: attention(q.out, cache, layer, scale, *out) after the attention input, which a
  // backend may fold together (the CUDA decode step appends with its q/k/v GEMV and attends the
  // tokens as pending). With `o` as well: then into += out · o^T (the o projection's residual
  // join), and q.out, k.out and out are scratch the backend may use in a form of its own (the
  // CUDA prefill keeps q and the attention's output in bf16 there) or leave unwritten.
  struct Attend {
    float scale = 0.0f;
    Tensor* out = nullptr;  // null: the input only
    const Tensor* o = nullptr;
    Tensor* into = nullptr;
  };
  // A layer's attention input: the q, k and v projections of x (normed by `norm`), then
  // rope_kv_append on their outputs, after which q.out and k.out hold the rotated q and k (v.out
  // may be left unwritten) unless attend.o says otherwise; then `attend`. When the three weights
  // (and biases) are consecutive row slices of one matrix (load_weights stacks them so), a
  // backend may project them as one matmul.
  virtual void attention_input(const Tensor& x, const InputNorm& norm, const Projection& q, const Projection& k,
                               const Projection& v, const Tensor& rope_positions, const RopeTable& rope, int head_dim,
                               KVCache& cache, int layer, const Tensor& positions, const HeadNorms& norms,
                               const Attend& attend);
  // Causal GQA attention of the n newest tokens (just appended) over the kept slots of `layer`.
  // q, out: [n, q_heads * head_dim]; query head h reads KV head h / (q_heads / kv_heads).
  // With a middle region (cache.pruned), every query also sees all of the head's middle slots,
  // scored as q · k over the kept channels only (scale unchanged), in the same softmax; a head
  // that keeps no channel sees none of its middle.
  virtual void attention(const Tensor& q, const KVCache& cache, int layer, float scale,
                         Tensor& out) = 0;
  // out: I32 [rows] index of each row's maximum (first one on ties).
  virtual void argmax(const Tensor& logits, Tensor& out) = 0;

  // For cache policies that rank tokens by attention (H2O, SnapKV): adds to cache.score[layer]
  // the softmax probability that queries [first_query, n) of the n newest tokens, over all query
  // heads of each KV group, give every kept slot of the full region, and to cache.pruned.score
  // what they give the middle's slots. Same softmax and masking as attention().
  virtual void accumulate_attention(const Tensor& q, KVCache& cache, int layer, float scale, int first_query) = 0;
  // Moves, for each KV head h of `layer`, slots keep[h, 0..count[h]) (ascending slot indices)
  // of the full region (or of the middle, keys.middle) to the front in order, with their
  // positions and scores; the region's length[layer, h] = count[h]. keep: I32 [kv_heads, w]
  // with w <= the region's capacity, or [1, w]: one list for every head; count: I32 [kv_heads].
  virtual void kv_compact(KVCache& cache, int layer, const Tensor& keep, const Tensor& count,
                          const CompactKeys& keys = {}) = 0;

  // LeanK demotion: copies, for each KV head h of `layer`, full-region slots
  // [front, front + count[h]) (front: cache.pruned.front) to the end of the head's middle region
  // with their positions (and scores, when the cache keeps them): K gathered to the head's kept
  // channels, V only when it keeps any. The caller then drops them from the full region with
  // kv_compact. count: I32 [kv_heads]; the caller guarantees front + count[h] <= length and room
  // in the middle.
  virtual void kv_demote(KVCache& cache, int layer, const Tensor& count) = 0;

  // Runs `ops`, a sequence of this backend's ops with no host reads or writes inside. A backend
  // that can record device work (CUDA graphs) runs them eagerly on the first call with an empty
  // `slot`, records them into it on the next and replays the recording from then on, so that
  // the whole sequence costs one launch. The caller guarantees that every call with the same
  // slot enqueues the same ops on the same tensors with the same shapes; what changes from call
  // to call must live in device memory (written before the call). The default runs `ops`.
  virtual void capture_or_replay(std::unique_ptr<Recording>& slot, const std::function<void()>& ops);

 protected:
  // x itself, or rmsnorm(x) written to norm.normed: the input of a matmul that normalises apart.
  const Tensor& normed_input(const Tensor& x, const InputNorm& norm);
  // norm.weight once it is known to span x's columns (one norm per row, never per head), or null.
  static const Tensor* input_norm_weight(const Tensor& x, const InputNorm& norm);
  // attend.into += attend.out · attend.o^T, when attend has an o.
  void project_attention(const Attend& attend);
};

enum class BackendKind { CPU, CUDA };

// Counts the bytes a backend's tensors hold; backends call it from alloc and the deleters.
class AllocationCounter {
 public:
  void add(size_t bytes);
  void remove(size_t bytes);
  size_t current() const { return current_; }
  size_t peak() const { return peak_; }
  void reset_peak() { peak_ = current_; }

 private:
  size_t current_ = 0, peak_ = 0;
};
BackendKind backend_kind_from_name(const std::string& name);  // "cpu" | "cuda"
bool cuda_compiled();       // kvlab was built with KVLAB_CUDA
int cuda_device_count();    // 0 without a usable device (or without KVLAB_CUDA)
std::unique_ptr<Backend> make_backend(BackendKind kind, int device_index = 0);

}  // namespace kvlab
