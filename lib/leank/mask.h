#pragma once
// LeanK (arXiv 2508.02215; microsoft/MInference LeanK/): static K-channel masks per (layer, KV
// head). An importance tensor (the stage-1 scaling factors alpha of training, or kvlab's
// training-free q·k estimate) becomes a 0/1 mask by the reference's stage-2 rule
// (`leank/utils.py: sparsify_scaling_factors`). Both live in safetensors files whose
// __metadata__ ties them to one model; docs/leank.md describes the format.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kvlab {

struct ModelConfig;

// What a mask must match: the model's shape, and its checkpoint when that was hashed.
struct ModelFingerprint {
  std::string architecture;  // HF class name, e.g. "LlamaForCausalLM"
  int layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int hidden_size = 0;
  int vocab_size = 0;
  std::string sha256;        // Checkpoint::content_sha256(); empty when unknown

  static ModelFingerprint of(const ModelConfig& c, const std::string& sha256 = "");
  int64_t channels() const { return int64_t(layers) * kv_heads * head_dim; }
  // "LlamaForCausalLM, 6 layers x 2 KV heads x head_dim 64, hidden 384, vocab 4096, sha256 1a2b3c4d5e6f…"
  std::string describe() const;
};

// Error naming both unless `file` (read from `file_path`) was made for `model` (`model_name`):
// every shape field must agree, and the sha256 too when both are known.
void require_same_model(const ModelFingerprint& file, const std::string& file_path, const ModelFingerprint& model,
                        const std::string& model_name);

// The text the importance was measured on.
struct CalibrationInfo {
  std::string file;    // as given; empty when unknown
  std::string sha256;  // of the file
  int64_t tokens = 0;  // tokens run through the model
};

inline constexpr const char* kImportanceSourceTrained = "trained";          // LeanK stage-1 alpha
inline constexpr const char* kImportanceSourceQkMagnitude = "qk-magnitude";  // estimate.h

// Importance of every post-RoPE K channel; larger = keep. F32 [layers, kv_heads, head_dim].
struct ChannelImportance {
  ModelFingerprint model;
  std::string source;  // kImportanceSource*
  CalibrationInfo calibration;
  // Further provenance written by the tool that made it ("estimate.window", "training.lr", ...);
  // kept as given.
  std::map<std::string, std::string> extra;
  std::vector<float> values;

  float at(int layer, int head, int channel) const {
    return values[(size_t(layer) * size_t(model.kv_heads) + size_t(head)) * size_t(model.head_dim) + size_t(channel)];
  }
};

void write_importance(const std::string& path, const ChannelImportance& importance);
// Validates format, version, shape against the metadata, and that every value is finite.
ChannelImportance read_importance(const std::string& path);

// A static mask: keep[l, h, c] = 1 for the channels kept, kept[l, h] = how many.
struct ChannelMask {
  ModelFingerprint model;
  double sparsity_requested = 0;  // fraction of channels to prune, as asked
  double sparsity_achieved = 0;   // after rounding each head to the alignment
  int alignment = 1;
  // Channel i kept <=> its RoPE partner i +- head_dim/2 kept (a kvlab option, docs/methods.md):
  // what position-shifting cache policies need to re-rotate kept keys.
  bool rope_pairs = false;
  float threshold = 0;            // the global quantile of the importance (of pair sums with rope_pairs)
  std::string importance_source;
  std::string importance_sha256;  // of the importance file, when made from one
  CalibrationInfo calibration;
  std::vector<int32_t> keep;      // [layers, kv_heads, head_dim], 0 or 1
  std::vector<int32_t> kept;      // [layers, kv_heads]

  bool kept_at(int layer, int head, int channel) const {
    return keep[(size_t(layer) * size_t(model.kv_heads) + size_t(head)) * size_t(model.head_dim) + size_t(channel)] != 0;
  }
  int kept_count(int layer, int head) const { return kept[size_t(layer) * size_t(model.kv_heads) + size_t(head)]; }
  // Whether every head keeps channel i exactly when it keeps i + head_dim / 2 (what re-rotating
  // a pruned key needs), whether or not the mask was made with rope_pairs.
  bool pair_closed() const;
};

void write_mask(const std::string& path, const ChannelMask& mask);
// Validates format, version, shapes, 0/1 values, counts = row sums, counts multiples of the
// alignment. With `expected`, also require_same_model against it.
ChannelMask read_mask(const std::string& path);
ChannelMask read_mask(const std::string& path, const ModelFingerprint& expected, const std::string& model_name);

// torch.quantile(values, q) on a float32 tensor (interpolation "linear"): sorted ascending,
// rank = q * (n - 1) in float32, lerp between the neighbours as ATen's scalar lerp does.
float quantile_linear(std::vector<float> values, double q);

// The reference's stage-2 rule (sparsify_scaling_factors), on importance [layers, heads, dim]:
//   thr = quantile(all values, sparsity)            one global threshold
//   cnt[l,h] = #(values[l,h,:] >= thr)
//   k[l,h] = (cnt + alignment/2) / alignment * alignment, clamped to [0, dim]
//   keep the k largest channels of each head; ties go to the lower channel index.
// Errors: sparsity outside [0, 1), alignment <= 0 or not dividing dim, a value that is not
// finite, values.size() != layers * heads * dim.
// rope_pairs (kvlab's option, not the reference's): the same rule on the pairs (i, i + dim/2),
// each scored by the sum of its two values, with alignment / 2 pairs as the unit; a kept pair
// keeps both channels. Error: an odd alignment.
ChannelMask make_mask(const ChannelImportance& importance, double sparsity, int alignment, bool rope_pairs = false);

// What a mask saves, as in docs/methods.md's table of the shipped LeanK masks.
struct MaskStats {
  int64_t channels = 0, channels_kept = 0;
  int heads = 0;
  int heads_pruned = 0;  // zero channels kept: their middle-region V can go too
  int heads_full = 0;    // every channel kept
  double k_kept_fraction = 0;
  double k_reduction = 0;      // 1 - k_kept_fraction, the achieved K sparsity
  double v_reduction = 0;      // heads_pruned / heads: the V of the middle region saved
  std::map<int, int> histogram;  // kept channels -> number of heads
  std::vector<double> layer_kept_fraction;
  std::vector<int> layer_heads_pruned;
};
MaskStats mask_stats(const ChannelMask& mask);
// The stats as a Markdown table row set plus a per-layer table, for kvlab-leank.
std::string format_mask_stats(const ChannelMask& mask, const MaskStats& stats);

// How far two masks of the same shape are apart, per layer and overall.
struct MaskComparison {
  struct Row {
    int64_t kept_a = 0, kept_b = 0, both = 0, either = 0;
    int heads_same_count = 0;  // heads whose kept counts agree
    double jaccard() const { return either == 0 ? 1.0 : double(both) / double(either); }
  };
  std::vector<Row> layers;
  Row total;
  int64_t channels = 0;
  int64_t agree = 0;  // channels with the same decision in both
};
// Error unless both masks have the same layers, kv_heads and head_dim (the checkpoints may differ).
MaskComparison compare_masks(const ChannelMask& a, const std::string& a_name, const ChannelMask& b,
                             const std::string& b_name);

}  // namespace kvlab
