#include "model/transformer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/rope.h"
#include "model/safetensors.h"
#include "model/weight_check.h"

namespace kvlab {

namespace {

std::string layer_prefix(int i) { return "model.layers." + std::to_string(i) + "."; }

// Every tensor the config needs, with its shape, in upload order. One that joins the one before
// (k and v after q, their biases likewise, up after gate) shares its allocation: see allocate().
struct Need {
  std::string name;
  std::vector<int64_t> shape;
  Tensor* slot;
  bool joins = false;
};

std::vector<Need> needed_tensors(const ModelConfig& c, ModelWeights& w) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  std::vector<Need> needs;
  needs.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, &w.embed});
  w.layers.resize(size_t(c.num_layers));
  for (int i = 0; i < c.num_layers; i++) {
    LayerWeights& l = w.layers[size_t(i)];
    std::string p = layer_prefix(i);
    needs.push_back({p + "input_layernorm.weight", {h}, &l.input_norm});
    needs.push_back({p + "self_attn.q_proj.weight", {q, h}, &l.q});
    needs.push_back({p + "self_attn.k_proj.weight", {kv, h}, &l.k, true});
    needs.push_back({p + "self_attn.v_proj.weight", {kv, h}, &l.v, true});
    needs.push_back({p + "self_attn.o_proj.weight", {h, q}, &l.o});
    if (c.attention_bias) {
      needs.push_back({p + "self_attn.q_proj.bias", {q}, &l.q_bias});
      needs.push_back({p + "self_attn.k_proj.bias", {kv}, &l.k_bias, true});
      needs.push_back({p + "self_attn.v_proj.bias", {kv}, &l.v_bias, true});
    }
    if (c.qk_norm) {
      needs.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, &l.q_norm});
      needs.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, &l.k_norm});
    }
    needs.push_back({p + "post_attention_layernorm.weight", {h}, &l.post_attention_norm});
    needs.push_back({p + "mlp.gate_proj.weight", {inter, h}, &l.gate});
    needs.push_back({p + "mlp.up_proj.weight", {inter, h}, &l.up, true});
    needs.push_back({p + "mlp.down_proj.weight", {h, inter}, &l.down});
  }
  needs.push_back({"model.norm.weight", {h}, &w.final_norm});
  if (!c.tie_word_embeddings) needs.push_back({"lm_head.weight", {c.vocab_size, h}, &w.lm_head});
  return needs;
}

// Allocates every slot: each run of needs joined to its first (of one weight dtype) as
// consecutive row slices of one allocation, the layout in which a backend may take the run as
// one matmul (Backend::attention_input, Backend::mlp). stored(i): need i's checkpoint dtype.
void allocate(const std::vector<Need>& needs, Backend& backend, const std::function<DType(size_t)>& stored) {
  for (size_t i = 0; i < needs.size();) {
    const DType dtype = backend.weight_dtype(stored(i));
    std::vector<int64_t> shape = needs[i].shape;
    size_t end = i + 1;
    for (; end < needs.size() && needs[end].joins && backend.weight_dtype(stored(end)) == dtype; end++) {
      KVLAB_ASSERT(std::equal(shape.begin() + 1, shape.end(), needs[end].shape.begin() + 1, needs[end].shape.end()));
      shape[0] += needs[end].shape[0];
    }
    const Tensor stack = backend.alloc(shape, dtype);
    for (int64_t row = 0; i < end; row += needs[i].shape[0], i++) *needs[i].slot = stack.slice(row, needs[i].shape[0]);
  }
}

}  // namespace

ModelWeights load_weights(const ModelConfig& c, const Checkpoint& ckpt, Backend& backend) {
  ModelWeights w;
  std::vector<Need> needs = needed_tensors(c, w);
  std::vector<const TensorRecord*> records;
  for (const Need& n : needs) records.push_back(&ckpt.require(n.name, n.shape));
  for (const TensorRecord* r : records) check_weight_values(*r);
  allocate(needs, backend, [&](size_t i) { return records[i]->dtype; });
  for (size_t i = 0; i < needs.size(); i++) {
    backend.upload_weight_into(*needs[i].slot, records[i]->data, records[i]->dtype);
    w.bytes += needs[i].slot->bytes();
  }
  if (c.tie_word_embeddings) w.lm_head = w.embed;
  return w;
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Roughly normal(mean, std) bf16 values: a sum of four 16-bit uniforms from one hash of
// (seed, index). Billions are needed for an 8B shape, so they are made in parallel and the
// result does not depend on the thread count.
void fill_random_bf16(uint16_t* out, int64_t n, uint64_t seed, float mean, float std) {
  constexpr double kSumMean = 2.0 * 65535.0, kSumStd = 37837.2;  // 65536 * sqrt(4 / 12)
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const uint64_t r = splitmix64(seed ^ splitmix64(uint64_t(i)));
    const double sum = double(r & 0xffff) + double((r >> 16) & 0xffff) + double((r >> 32) & 0xffff) + double(r >> 48);
    out[i] = f32_to_bf16(mean + std * float((sum - kSumMean) / kSumStd));
  }
}

}  // namespace

ModelWeights random_weights(const ModelConfig& c, Backend& backend, uint64_t seed) {
  ModelWeights w;
  std::vector<Need> needs = needed_tensors(c, w);
  allocate(needs, backend, [](size_t) { return DType::BF16; });
  for (size_t t = 0; t < needs.size(); t++) {
    const Need& n = needs[t];
    // Norm weights near 1, everything else small, as an initialised model has them.
    const bool is_norm = n.shape.size() == 1 && n.name.find("bias") == std::string::npos;
    int64_t numel = 1;
    for (int64_t d : n.shape) numel *= d;
    std::vector<uint16_t> host(static_cast<size_t>(numel));
    const uint64_t tensor_seed = splitmix64(seed) ^ splitmix64(~uint64_t(t));
    fill_random_bf16(host.data(), numel, tensor_seed, is_norm ? 1.0f : 0.0f, 0.02f);
    backend.upload_weight_into(*n.slot, host.data(), DType::BF16);
    w.bytes += n.slot->bytes();
  }
  if (c.tie_word_embeddings) w.lm_head = w.embed;
  return w;
}

Transformer::Transformer(ModelConfig config, Backend& backend, ModelWeights weights, int max_chunk)
    : config_(std::move(config)), backend_(backend), weights_(std::move(weights)), max_chunk_(max_chunk) {
  KVLAB_ASSERT(max_chunk_ >= 1);
  std::vector<float> inv_freq = rope_inv_freq(config_);
  rope_.inv_freq = backend_.alloc({int64_t(inv_freq.size())}, DType::F32);
  backend_.write(rope_.inv_freq, inv_freq.data(), inv_freq.size() * sizeof(float));
  rope_.attention_scaling = rope_attention_scaling(config_);
  decode_ws_ = make_workspace(1);
}

KVCache Transformer::new_cache(int capacity) {
  KVCache cache = backend_.alloc_kv_cache(config_.num_layers, config_.num_kv_heads, config_.head_dim, capacity);
  cache.host_length.assign(size_t(config_.num_layers * config_.num_kv_heads), 0);
  return cache;
}

Transformer::Workspace Transformer::make_workspace(int rows) {
  const DType a = backend_.activation_dtype();
  const int64_t n = rows;
  Workspace w;
  w.rows = rows;
  w.ids = backend_.alloc({n}, DType::I32);
  w.positions = backend_.alloc({n}, DType::I32);
  w.rope_positions = backend_.alloc({n}, DType::I32);
  w.x = backend_.alloc({n, config_.hidden_size}, a);
  w.norm = backend_.alloc({n, config_.hidden_size}, a);
  w.q = backend_.alloc({n, config_.q_dim()}, a);
  w.k = backend_.alloc({n, config_.kv_dim()}, a);
  w.v = backend_.alloc({n, config_.kv_dim()}, a);
  w.attn = backend_.alloc({n, config_.q_dim()}, a);
  // gate and up in one allocation, up after gate, so a backend may run both as one product.
  const DType m = backend_.mlp_scratch_dtype();
  const int64_t inter = config_.intermediate_size;
  const Tensor gate_up = backend_.alloc({2 * n, inter}, m);
  w.gate = gate_up.slice(0, n);
  w.up = gate_up.slice(n, n);
  w.act = backend_.alloc({n, inter}, m);
  w.logits_last = backend_.alloc({1, config_.vocab_size}, DType::F32);
  return w;
}

Transformer::Workspace Transformer::Workspace::slice(int first, int count) const {
  Workspace w = *this;
  w.rows = count;
  for (Tensor* t : {&w.ids, &w.positions, &w.rope_positions, &w.x, &w.norm, &w.q, &w.k, &w.v, &w.attn, &w.gate, &w.up,
                    &w.act})
    *t = t->slice(first, count);
  if (!w.logits_all.empty()) w.logits_all = w.logits_all.slice(first, count);
  return w;
}

Tensor Transformer::forward(const std::vector<int32_t>& ids, const std::vector<int32_t>& positions,
                            KVCache& cache, Logits logits, const ForwardExtras& extras) {
  const int n = int(ids.size());
  KVLAB_ASSERT(n >= 1 && n <= max_chunk_ && positions.size() == ids.size());
  if (cache.max_length() + n > cache.capacity)
    fail("KV cache overflow: " + std::to_string(cache.max_length()) + " kept + " + std::to_string(n) +
             " new tokens exceed its capacity of " + std::to_string(cache.capacity),
         kExitInternal);
  if (n > 1 && chunk_ws_.rows == 0) chunk_ws_ = make_workspace(max_chunk_);
  if (logits == Logits::All && chunk_ws_.logits_all.empty() && n > 1)
    chunk_ws_.logits_all = backend_.alloc({max_chunk_, config_.vocab_size}, DType::F32);
  Workspace w = n == 1 ? decode_ws_ : chunk_ws_.slice(0, n);

  const ModelConfig& c = config_;
  const float eps = float(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  Backend& b = backend_;
  b.write(w.ids, ids.data(), ids.size() * sizeof(int32_t));
  b.write(w.positions, positions.data(), positions.size() * sizeof(int32_t));
  const bool renumbered = !extras.rope_positions.empty();
  if (renumbered) {
    KVLAB_ASSERT(extras.rope_positions.size() == positions.size());
    b.write(w.rope_positions, extras.rope_positions.data(), positions.size() * sizeof(int32_t));
  }
  const Tensor& rope_positions = renumbered ? w.rope_positions : w.positions;

  const bool scores = extras.score_first_query >= 0 && extras.score_first_query < n;
  Tensor out;
  if (logits == Logits::Last || (logits == Logits::All && n == 1)) out = w.logits_last;
  if (logits == Logits::All && n > 1) out = w.logits_all;

  // Only the logits read the last layer's output: where they need just the last row (or none)
  // and no policy scores its queries, that layer's attention, o and MLP run on those rows alone
  // (its K and V still go into the cache for every token), as llama.cpp prunes its output rows.
  const int out_rows = logits == Logits::All ? n : logits == Logits::Last ? 1 : 0;
  const bool prune_last_layer = out_rows < n && !scores;

  auto run = [&] {
    b.embedding(weights_.embed, w.ids, w.x);
    // Each RMSNorm is folded into the matmuls that read it, and the o and down projections
    // add into the residual stream x.
    for (int li = 0; li < c.num_layers; li++) {
      const LayerWeights& l = weights_.layers[size_t(li)];
      auto bias = [](const Tensor& t) { return t.empty() ? nullptr : &t; };
      const Backend::HeadNorms head_norms = c.qk_norm ? Backend::HeadNorms{&l.q_norm, &l.k_norm, eps}
                                                       : Backend::HeadNorms{};
      // An observer sees q and k between the input and the attention, which then run apart, as
      // they do in a pruned layer.
      const bool observed = bool(extras.observe_qk);
      const bool pruned = prune_last_layer && li == c.num_layers - 1;
      const bool apart = observed || pruned;
      // A policy that scores the queries reads q after the attention: o then runs apart too.
      Backend::Attend attend{scale, &w.attn, scores ? nullptr : &l.o, &w.x};
      b.attention_input(w.x, {&l.input_norm, eps, &w.norm}, {&l.q, bias(l.q_bias), &w.q},
                        {&l.k, bias(l.k_bias), &w.k}, {&l.v, bias(l.v_bias), &w.v}, rope_positions, rope_,
                        c.head_dim, cache, li, w.positions, head_norms, apart ? Backend::Attend{} : attend);
      if (observed) extras.observe_qk(li, w.q, w.k);
      if (pruned && out_rows == 0) continue;
      // The newest out_rows tokens are the last rows: attention() reads its queries as the newest.
      Workspace r = pruned ? w.slice(n - out_rows, out_rows) : w;
      if (apart) b.attention(r.q, cache, li, scale, r.attn);
      if (scores) b.accumulate_attention(r.q, cache, li, scale, extras.score_first_query);
      if (apart || scores) b.matmuls(r.attn, {{&l.o, nullptr, &r.x, true}}, {});
      b.mlp(r.x, l.gate, l.up, l.down, r.gate, r.up, r.act, {&l.post_attention_norm, eps, &r.norm});
    }
    if (logits != Logits::None) {
      const bool all = logits == Logits::All;
      Tensor x = all ? w.x : w.x.slice(n - 1, 1), normed = all ? w.norm : w.norm.slice(n - 1, 1);
      b.matmuls(x, {{&weights_.lm_head, nullptr, &out}}, {&weights_.final_norm, eps, &normed});
    }
  };
  // A decode step is a few hundred small launches with its inputs already on the device:
  // recorded once per cache and mode, replayed as one graph launch.
  if (n == 1 && !extras.observe_qk) {
    b.capture_or_replay(decode_recording(cache, logits != Logits::None, scores, renumbered), run);
  } else {
    run();
  }
  for (int32_t& len : cache.host_length) len += n;
  return out;
}

std::unique_ptr<Recording>& Transformer::decode_recording(const KVCache& cache, bool logits, bool scores,
                                                          bool renumbered) {
  // Everything a recorded step reads or writes besides the model's own buffers: the cache's
  // tensors (compaction changes only their contents and lengths), its capacity and the mode.
  std::vector<uintptr_t> key = {uintptr_t(cache.length.data), uintptr_t(cache.position.data),
                                uintptr_t(cache.score.data), uintptr_t(cache.capacity),
                                uintptr_t(logits) | uintptr_t(scores) << 1 | uintptr_t(renumbered) << 2};
  for (int l = 0; l < cache.layers; l++) {
    key.push_back(uintptr_t(cache.k[size_t(l)].data));
    key.push_back(uintptr_t(cache.v[size_t(l)].data));
  }
  // LeanK's middle region: demotion changes only its contents and device lengths.
  key.push_back(uintptr_t(cache.pruned.length.data));
  for (size_t l = 0; l < cache.pruned.k.size(); l++) {
    key.push_back(uintptr_t(cache.pruned.k[l].data));
    key.push_back(uintptr_t(cache.pruned.v[l].data));
  }
  decode_steps_++;
  for (DecodeRecording& r : decode_recordings_) {
    if (r.key == key) {
      r.last_use = decode_steps_;
      return r.recording;
    }
  }
  // A new cache: keep the few most recently used recordings, as a caller may alternate a couple.
  constexpr size_t kKept = 4;
  if (decode_recordings_.size() < kKept) {
    decode_recordings_.push_back({});
  } else {
    auto oldest =
        std::min_element(decode_recordings_.begin(), decode_recordings_.end(),
                         [](const DecodeRecording& a, const DecodeRecording& b) { return a.last_use < b.last_use; });
    std::rotate(oldest, oldest + 1, decode_recordings_.end());
    decode_recordings_.back() = DecodeRecording{};
  }
  decode_recordings_.back().key = std::move(key);
  decode_recordings_.back().last_use = decode_steps_;
  return decode_recordings_.back().recording;
}

}  // namespace kvlab
