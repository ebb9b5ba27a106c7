#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_excerpt.h"

namespace kvlab {

using nlohmann::json;

const char* architecture_name(Architecture a) {
  switch (a) {
    case Architecture::Llama: return "LlamaForCausalLM";
    case Architecture::Qwen2: return "Qwen2ForCausalLM";
    case Architecture::Qwen3: return "Qwen3ForCausalLM";
  }
  return "?";
}

namespace {

struct Reader {
  const json& j;
  const std::string& source;

  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    fail(source + ": field \"" + field + "\" " + why);
  }
  const json* find(const std::string& field) const {
    auto it = j.find(field);
    return (it == j.end() || it->is_null()) ? nullptr : &*it;
  }
  int positive_int(const std::string& field) const {
    const json* v = find(field);
    if (!v) bad(field, "is missing");
    if (!v->is_number_integer() || v->get<long long>() <= 0 || v->get<long long>() > (1LL << 30))
      bad(field, "must be a positive integer, got " + json_excerpt(*v));
    return v->get<int>();
  }
  int positive_int_or(const std::string& field, int fallback) const {
    return find(field) ? positive_int(field) : fallback;
  }
  double positive_number_or(const std::string& field, double fallback) const {
    const json* v = find(field);
    if (!v) return fallback;
    if (!v->is_number() || v->get<double>() <= 0) bad(field, "must be a positive number, got " + json_excerpt(*v));
    return v->get<double>();
  }
  bool bool_or(const std::string& field, bool fallback) const {
    const json* v = find(field);
    if (!v) return fallback;
    if (!v->is_boolean()) bad(field, "must be true or false, got " + json_excerpt(*v));
    return v->get<bool>();
  }
};

RopeScaling parse_rope_scaling(const json& block, const std::string& source, int max_position_embeddings) {
  std::string field = "rope_scaling";
  if (!block.is_object()) fail(source + ": field \"" + field + "\" must be an object");
  Reader r{block, source};
  RopeScaling s;
  const json* type = r.find("rope_type");
  if (!type) type = r.find("type");
  if (!type || !type->is_string()) fail(source + ": field \"rope_scaling.rope_type\" is missing");
  s.type = type->get<std::string>();
  if (s.type == "default") return s;
  if (s.type != "llama3" && s.type != "linear" && s.type != "yarn")
    fail(source + ": field \"rope_scaling.rope_type\" is \"" + s.type +
         "\"; kvlab supports \"default\", \"linear\", \"llama3\" and \"yarn\"");
  s.factor = r.positive_number_or("factor", 0);
  if (s.factor <= 0) fail(source + ": field \"rope_scaling.factor\" is missing");
  // Frequencies are divided by it in fp32.
  if (s.factor < 1e-3 || s.factor > 1e6)
    fail(source + ": field \"rope_scaling.factor\" must be between 0.001 and 1e6, got " + std::to_string(s.factor));
  if (s.type == "llama3") {
    s.low_freq_factor = r.positive_number_or("low_freq_factor", 1.0);
    s.high_freq_factor = r.positive_number_or("high_freq_factor", 4.0);
    s.original_max_position = r.positive_int_or("original_max_position_embeddings", 8192);
    if (s.high_freq_factor <= s.low_freq_factor)
      fail(source + ": field \"rope_scaling.high_freq_factor\" must exceed low_freq_factor");
  }
  if (s.type == "yarn") {
    s.original_max_position = r.positive_int_or("original_max_position_embeddings", max_position_embeddings);
    s.beta_fast = r.positive_number_or("beta_fast", 32.0);
    s.beta_slow = r.positive_number_or("beta_slow", 1.0);
    s.truncate = r.bool_or("truncate", true);
    // As HF and the YaRN paper: 0.1 ln(factor) + 1, or DeepSeek's ratio of two such terms.
    auto mscale = [&](double m) { return s.factor <= 1 ? 1.0 : 0.1 * m * std::log(s.factor) + 1.0; };
    const double m = r.positive_number_or("mscale", 0), m_all = r.positive_number_or("mscale_all_dim", 0);
    s.attention_factor = r.positive_number_or("attention_factor", m > 0 && m_all > 0 ? mscale(m) / mscale(m_all)
                                                                                      : mscale(1.0));
    // cos and sin are scaled in fp32: a factor beyond its range would turn every logit to inf.
    if (s.attention_factor > 1e6)
      fail(source + ": field \"rope_scaling.attention_factor\" must be at most 1e6, got " +
           std::to_string(s.attention_factor));
  }
  return s;
}

bool same_scaling(const RopeScaling& a, const RopeScaling& b) {
  return a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor && a.original_max_position == b.original_max_position &&
         a.beta_fast == b.beta_fast && a.beta_slow == b.beta_slow && a.truncate == b.truncate &&
         a.attention_factor == b.attention_factor;
}

std::vector<int> parse_token_ids(const json* v, const std::string& field, const std::string& source) {
  std::vector<int> ids;
  if (!v) return ids;
  auto one = [&](const json& x) {
    if (!x.is_number_integer() || x.get<long long>() < 0)
      fail(source + ": field \"" + field + "\" must hold token ids, got " + json_excerpt(x));
    ids.push_back(x.get<int>());
  };
  if (v->is_array()) {
    for (const json& x : *v) one(x);
  } else {
    one(*v);
  }
  return ids;
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& source) {
  if (!j.is_object()) fail(source + ": not a JSON object");
  Reader r{j, source};
  ModelConfig c;

  const json* archs = r.find("architectures");
  if (!archs || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    r.bad("architectures", "must be a list naming the model class");
  std::string arch = (*archs)[0].get<std::string>();
  if (arch == "LlamaForCausalLM") {
    c.arch = Architecture::Llama;
  } else if (arch == "Qwen2ForCausalLM") {
    c.arch = Architecture::Qwen2;
  } else if (arch == "Qwen3ForCausalLM") {
    c.arch = Architecture::Qwen3;
  } else {
    r.bad("architectures", "names \"" + arch +
                               "\", which kvlab does not support (supported: LlamaForCausalLM, "
                               "Qwen2ForCausalLM, Qwen3ForCausalLM)");
  }

  c.vocab_size = r.positive_int("vocab_size");
  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_layers = r.positive_int("num_hidden_layers");
  c.num_heads = r.positive_int("num_attention_heads");
  c.num_kv_heads = r.positive_int_or("num_key_value_heads", c.num_heads);
  c.max_position_embeddings = r.positive_int_or("max_position_embeddings", 2048);
  c.rms_norm_eps = r.positive_number_or("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = r.bool_or("tie_word_embeddings", c.arch != Architecture::Llama);

  if (c.num_heads % c.num_kv_heads != 0)
    r.bad("num_key_value_heads", "(" + std::to_string(c.num_kv_heads) + ") must divide num_attention_heads (" +
                                     std::to_string(c.num_heads) + ")");
  // Qwen3 states head_dim explicitly and it may differ from hidden / heads.
  if (r.find("head_dim")) {
    c.head_dim = r.positive_int("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      r.bad("hidden_size", "must be divisible by num_attention_heads when head_dim is absent");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) r.bad("head_dim", "must be even for rotary embeddings");
  // Dimensions multiply into int and int64 sizes downstream (q_dim, parameter and byte counts).
  if (double(c.num_heads) * c.head_dim > (1 << 30) ||
      double(c.num_layers) * c.hidden_size * (4.0 * c.num_heads * c.head_dim + 3.0 * c.intermediate_size) +
              2.0 * c.vocab_size * c.hidden_size > 1e15)
    r.bad("hidden_size", "and the other dimensions describe more than 10^15 parameters; no checkpoint is that large");

  // transformers 5 moved rope settings into rope_parameters; accept both spellings. A config
  // holding both (a model card's rope_scaling added to a config saved by transformers 5) must
  // not have one silently win: they must say the same.
  const json* rope_params = r.find("rope_parameters");
  const json* rope_scaling = r.find("rope_scaling");
  if (rope_params && rope_params->is_object()) {
    Reader rp{*rope_params, source};
    c.rope_theta = rp.positive_number_or("rope_theta", r.positive_number_or("rope_theta", 10000.0));
    c.rope_scaling = parse_rope_scaling(*rope_params, source, c.max_position_embeddings);
    if (rope_scaling && !same_scaling(parse_rope_scaling(*rope_scaling, source, c.max_position_embeddings),
                                      c.rope_scaling))
      r.bad("rope_scaling", "(" + json_excerpt(*rope_scaling) + ") disagrees with rope_parameters (" +
                                json_excerpt(*rope_params) + "); keep one of them");
  } else {
    c.rope_theta = r.positive_number_or("rope_theta", 10000.0);
    if (rope_scaling) c.rope_scaling = parse_rope_scaling(*rope_scaling, source, c.max_position_embeddings);
  }

  // The frequencies are theta^(-2i/d) in fp32 (and YaRN finds its band through log(theta)): a
  // theta at or below 1 or past fp32's range gives none that mean anything, or inf and NaN.
  if (!(c.rope_theta > 1 && c.rope_theta <= 1e30))
    r.bad("rope_theta", "must be above 1 and at most 1e30, got " + std::to_string(c.rope_theta));

  switch (c.arch) {
    case Architecture::Llama:
      c.attention_bias = r.bool_or("attention_bias", false);
      if (r.bool_or("mlp_bias", false)) r.bad("mlp_bias", "is true; kvlab supports Llama MLPs without bias");
      break;
    case Architecture::Qwen2:
      c.attention_bias = true;
      break;
    case Architecture::Qwen3:
      c.attention_bias = r.bool_or("attention_bias", false);
      c.qk_norm = true;
      break;
  }
  if (const json* act = r.find("hidden_act"); act && *act != "silu")
    r.bad("hidden_act", "is " + json_excerpt(*act) + "; kvlab supports \"silu\"");
  // Sliding-window attention changes which tokens a layer sees; kvlab does not model it.
  if (r.bool_or("use_sliding_window", false))
    r.bad("use_sliding_window", "is true; kvlab supports full attention only");
  if (const json* dt = r.find("torch_dtype"); dt && dt->is_string()) c.torch_dtype = dt->get<std::string>();
  if (const json* dt = r.find("dtype"); dt && dt->is_string()) c.torch_dtype = dt->get<std::string>();
  if (const json* bos = r.find("bos_token_id"); bos && bos->is_number_integer()) c.bos_token_id = bos->get<int>();
  c.eos_token_ids = parse_token_ids(r.find("eos_token_id"), "eos_token_id", source);
  return c;
}

int ModelConfig::context_window() const {
  if (rope_scaling.type != "yarn") return max_position_embeddings;
  const double scaled = double(rope_scaling.original_max_position) * rope_scaling.factor;
  return int(std::min<double>(1 << 30, std::max<double>(max_position_embeddings, std::floor(scaled))));
}

std::string ModelConfig::context_window_text() const {
  std::string why = "max_position_embeddings";
  if (context_window() != max_position_embeddings) {
    char factor[32];
    std::snprintf(factor, sizeof factor, "%g", rope_scaling.factor);
    why = "YaRN's original_max_position_embeddings " + std::to_string(rope_scaling.original_max_position) +
          " x factor " + factor;
  }
  return "the model's context window (" + std::to_string(context_window()) + " tokens: " + why + ")";
}

json apply_hf_overrides(json config, const json& hf_overrides) {
  if (hf_overrides.is_null()) return config;
  static const char* const kOverridable[] = {"rope_scaling", "rope_parameters", "rope_theta",
                                             "max_position_embeddings"};
  if (!hf_overrides.is_object()) fail("--hf-overrides must be a JSON object, got " + json_excerpt(hf_overrides));
  for (const auto& item : hf_overrides.items())
    if (std::find(std::begin(kOverridable), std::end(kOverridable), item.key()) == std::end(kOverridable))
      fail("--hf-overrides: \"" + item.key() + "\" cannot be overridden (only rope_scaling, rope_parameters, rope_theta " +
           "and max_position_embeddings: the others fix the checkpoint's shapes)");
  if (config.is_object()) config.merge_patch(hf_overrides);
  return config;
}

std::string hf_overrides_source(const std::string& source, const json& hf_overrides) {
  return hf_overrides.is_null() ? source : source + " with --hf-overrides " + hf_overrides.dump();
}

ModelConfig load_model_config(const std::string& model_dir, const json& hf_overrides) {
  std::string path = model_dir + "/config.json";
  if (std::error_code ec; std::filesystem::is_directory(path, ec)) fail(path + ": is a directory, not a JSON file");
  std::ifstream f(path);
  if (!f) fail(path + ": cannot open (is " + model_dir + " a Hugging Face model directory?)");
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded()) fail(path + ": not valid JSON");
  return parse_model_config(apply_hf_overrides(std::move(j), hf_overrides), hf_overrides_source(path, hf_overrides));
}

ModelConfig load_model_config(const std::string& model_dir) { return load_model_config(model_dir, json()); }

}  // namespace kvlab
