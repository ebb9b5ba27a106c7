#pragma once
// The decoder-only transformer of Llama-3 / Qwen2 / Qwen3, written once against Backend.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace kvlab {

class Checkpoint;

struct LayerWeights {
  Tensor input_norm, post_attention_norm;
  Tensor q, k, v, o;               // [out, in]
  Tensor q_bias, k_bias, v_bias;   // empty unless attention_bias
  Tensor q_norm, k_norm;           // [head_dim], Qwen3 only
  Tensor gate, up, down;
};

struct ModelWeights {
  Tensor embed;       // [vocab, hidden]
  Tensor final_norm;  // [hidden]
  Tensor lm_head;     // [vocab, hidden]; the embedding itself when tied
  std::vector<LayerWeights> layers;
  size_t bytes = 0;   // as held by the backend
};

// Checks every tensor the config needs against the checkpoint (names, shapes) before
// uploading any of them, so a bad checkpoint fails fast and allocates nothing.
ModelWeights load_weights(const ModelConfig& c, const Checkpoint& ckpt, Backend& backend);
// Random weights at a config's shape, for speed and memory measurements without a checkpoint.
ModelWeights random_weights(const ModelConfig& c, Backend& backend, uint64_t seed);

enum class Logits { None, Last, All };

// What cache policies need from a forward pass beyond the plain one.
struct ForwardExtras {
  // RoPE positions when they differ from the tokens' original positions (policies that
  // re-number positions inside the cache); empty = the original positions.
  std::vector<int32_t> rope_positions;
  // >= 0: accumulate the attention of queries [score_first_query, n) into cache.score.
  int score_first_query = -1;
  // Called in every layer right after RoPE with q [n, q_dim] and k [n, kv_dim] on the backend
  // (calibration: lib/leank/estimate.cpp). A forward with an observer is never recorded.
  std::function<void(int layer, const Tensor& q, const Tensor& k)> observe_qk;
};

// Tokens a prefill forward takes at most: on an H200 at the 8B shapes, 1,024 takes an 8K prompt
// in 8% faster than 512 and 2,048 no faster (bench/README.md), for ~240 MB of workspace at 8B.
constexpr int kDefaultPrefillChunk = 1024;

class Transformer {
 public:
  Transformer(ModelConfig config, Backend& backend, ModelWeights weights, int max_chunk = kDefaultPrefillChunk);

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return backend_; }
  const ModelWeights& weights() const { return weights_; }
  int max_chunk() const { return max_chunk_; }
  const RopeTable& rope() const { return rope_; }

  KVCache new_cache(int capacity);

  // Runs tokens `ids` (at most max_chunk) at original `positions` through the model, appending
  // their K/V to `cache`. Returns logits [1 or n, vocab] on the backend (empty for None);
  // valid until the next call.
  Tensor forward(const std::vector<int32_t>& ids, const std::vector<int32_t>& positions, KVCache& cache,
                 Logits logits, const ForwardExtras& extras = {});

 private:
  // Activations for up to `rows` tokens; smaller chunks use row slices of it.
  struct Workspace {
    int rows = 0;
    Tensor ids, positions, rope_positions, x, norm, q, k, v, attn, gate, up, act, logits_last, logits_all;
    Workspace slice(int first, int count) const;
  };
  Workspace make_workspace(int rows);
  // The recording slot of decode steps on `cache` in this mode.
  std::unique_ptr<Recording>& decode_recording(const KVCache& cache, bool logits, bool scores, bool renumbered);

  struct DecodeRecording {
    std::vector<uintptr_t> key;
    uint64_t last_use = 0;
    std::unique_ptr<Recording> recording;
  };

  ModelConfig config_;
  Backend& backend_;
  ModelWeights weights_;
  RopeTable rope_;
  int max_chunk_;
  Workspace decode_ws_;  // one token: kept apart so decode never touches the big buffers
  Workspace chunk_ws_;   // max_chunk tokens, made on the first prefill
  std::vector<DecodeRecording> decode_recordings_;  // the few most recently used
  uint64_t decode_steps_ = 0;
};

}  // namespace kvlab
