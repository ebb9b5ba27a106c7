#pragma once
// A Hugging Face config.json turned into the typed facts the transformer needs.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

enum class Architecture { Llama, Qwen2, Qwen3 };
const char* architecture_name(Architecture a);  // the HF class name, e.g. "LlamaForCausalLM"

// RoPE scaling as HF's rope_scaling/rope_parameters block; "default" means none.
struct RopeScaling {
  std::string type = "default";  // "default" | "linear" | "llama3" | "yarn"
  double factor = 1.0;
  double low_freq_factor = 1.0;    // llama3
  double high_freq_factor = 4.0;   // llama3
  int original_max_position = 8192;  // llama3; yarn (default: max_position_embeddings)
  // yarn: the band of dimensions blended between kept and scaled frequencies lies between
  // beta_fast and beta_slow rotations over original_max_position (whole dimensions when
  // truncate); cos and sin are multiplied by attention_factor (resolved from factor, or mscale
  // and mscale_all_dim, when the config leaves it out).
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;
  double attention_factor = 1.0;
};

struct ModelConfig {
  Architecture arch = Architecture::Llama;
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;   // q/k/v biases (Qwen2 always; Llama when attention_bias)
  bool qk_norm = false;          // per-head RMSNorm of q and k before RoPE (Qwen3)
  std::string torch_dtype = "bfloat16";
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  // The longest sequence the model is meant to take: max_position_embeddings, or with YaRN
  // original_max_position_embeddings x factor (vLLM's rule; Qwen's YaRN configs keep the
  // pretrained length in max_position_embeddings).
  int context_window() const;
  // For errors: "the model's context window (32768 tokens: max_position_embeddings)".
  std::string context_window_text() const;
};

// Parses and validates; every error names `source` (the file) and the offending field.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);
// config.json of a model directory, with `hf_overrides` (a JSON object, or null for none)
// merged into it first (RFC 7396: null removes a key), as vLLM's --hf-overrides: how a user turns
// on YaRN or moves the RoPE settings without editing the checkpoint. Only keys that leave the
// weights' shapes alone may be overridden: rope_scaling, rope_parameters, rope_theta and
// max_position_embeddings.
ModelConfig load_model_config(const std::string& model_dir, const nlohmann::json& hf_overrides);
ModelConfig load_model_config(const std::string& model_dir);
// The merge itself, for configs from elsewhere (named shapes), and how errors name the result.
nlohmann::json apply_hf_overrides(nlohmann::json config, const nlohmann::json& hf_overrides);
std::string hf_overrides_source(const std::string& source, const nlohmann::json& hf_overrides);

}  // namespace kvlab
