// The corrupt-input battery: the malformations users meet in safetensors files, index files,
// config.json, tokenizer.json and model directories, each applied to a copy of an embedded tiny
// model and run through the apps as a user runs them. Every case must end with exit code 2,
// exactly one line on stderr naming the problem, and nothing in the output directory (no report,
// no temporary file).
//
// Cases run through kvlab-inspect (config + every checkpoint file) and kvlab-eval (config,
// tokenizer, checkpoint, shapes against the config, weight values), or through kvlab-eval alone
// when only it reads what the case damages.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/dtype.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

// The embedded models: tiny Llama is sharded (two files and an index), tiny Qwen3 is one file.
const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";
const char* kSingle = "model.safetensors";

std::string model_source(const std::string& model) {
  return testing::source_dir() + "/datasets/models/tiny-random-" + model;
}

// ---------------------------------------------------------------------------------------------
// Damaging files.

// A safetensors file split into its header (in file order) and its data area.
struct SafetensorsParts {
  ordered_json header;
  std::string data;

  static SafetensorsParts read(const std::string& path) {
    const std::string bytes = testing::read_file(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    return {ordered_json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
  }
  // The file with `header_text` as its header (padded with spaces to 8 bytes, as writers do).
  std::string bytes(std::string header_text) const {
    header_text.append((8 - header_text.size() % 8) % 8, ' ');
    uint64_t n = header_text.size();
    std::string out(8, '\0');
    std::memcpy(out.data(), &n, 8);
    return out + header_text + data;
  }
  void write(const std::string& path) const { testing::write_file(path, bytes(header.dump())); }
  // Absolute file offsets of every boundary a truncation can hit.
  std::vector<size_t> boundaries(size_t header_len) const {
    std::set<size_t> cuts = {0, 4, 7, 8, 8 + header_len / 2, 8 + header_len - 1, 8 + header_len};
    const size_t start = 8 + header_len, end = start + data.size();
    for (auto& [name, e] : header.items()) {
      if (name == "__metadata__") continue;
      cuts.insert(start + e["data_offsets"][0].get<size_t>());
      cuts.insert(start + e["data_offsets"][1].get<size_t>());
    }
    cuts.insert(end - 1);
    cuts.erase(end);  // the whole file is not a truncation
    return {cuts.begin(), cuts.end()};
  }
};

void edit_header(const std::string& path, const std::function<void(ordered_json&)>& edit) {
  SafetensorsParts parts = SafetensorsParts::read(path);
  edit(parts.header);
  parts.write(path);
}

void edit_json(const std::string& path, const std::function<void(ordered_json&)>& edit) {
  ordered_json j = ordered_json::parse(testing::read_file(path));
  edit(j);
  testing::write_file(path, j.dump(2));
}

// Overwrites the 8-byte header length.
void set_header_length(const std::string& path, uint64_t n) {
  std::string bytes = testing::read_file(path);
  std::memcpy(bytes.data(), &n, 8);
  testing::write_file(path, bytes);
}

// Sets raw element `index` of a 16-bit (BF16 or F16) tensor to `bits`.
void poke16(const std::string& path, const std::string& tensor, size_t index, uint16_t bits) {
  SafetensorsParts parts = SafetensorsParts::read(path);
  const ordered_json& e = parts.header.at(tensor);
  EXPECT_TRUE(e["dtype"] == "BF16" || e["dtype"] == "F16") << e;
  std::memcpy(parts.data.data() + e["data_offsets"][0].get<size_t>() + 2 * index, &bits, 2);
  testing::write_file(path, parts.bytes(parts.header.dump()));
}

// Rewrites the file with `tensor` stored as `to` (values converted), then element `index` set to
// `value`: how a checkpoint saved in another precision, or damaged in it, looks.
void store_as(const std::string& path, const std::string& tensor, DType to, size_t index, float value) {
  std::vector<TensorToWrite> out;
  {
    auto f = SafetensorsFile::open(path);
    for (const auto& [name, t] : f->tensors()) {
      TensorToWrite w{name, t.dtype, t.shape, std::string(static_cast<const char*>(t.data), t.bytes)};
      if (name == tensor) {
        std::vector<float> v(size_t(t.numel()));
        convert_to_f32(t.data, t.dtype, v.size(), v.data());
        v.at(index) = value;
        w.dtype = to;
        w.bytes.clear();
        for (float x : v) {
          if (to == DType::F32) w.bytes.append(reinterpret_cast<const char*>(&x), 4);
          if (to == DType::I32) {
            int32_t i = int32_t(x * 1000);
            w.bytes.append(reinterpret_cast<const char*>(&i), 4);
          }
          if (to == DType::F16 || to == DType::BF16) {
            uint16_t h = to == DType::F16 ? f32_to_f16(x) : f32_to_bf16(x);
            w.bytes.append(reinterpret_cast<const char*>(&h), 2);
          }
        }
      }
      out.push_back(std::move(w));
    }
  }
  write_safetensors(path, out, {{"format", "pt"}});
}

// ---------------------------------------------------------------------------------------------
// The cases.

enum AppMask : unsigned { kEval = 1, kInspect = 2, kBoth = 3 };

struct Case {
  std::string name;   // [A-Za-z0-9_], unique
  std::string model;  // "llama" (sharded) or "qwen3" (single file)
  std::function<void(const std::string& dir)> damage;
  std::string must_mention;  // in the error line
  unsigned apps = kBoth;
  bool needs_permissions = false;  // chmod-based: root reads everything, so these skip as root
};

std::string identifier(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

void add_safetensors_cases(std::vector<Case>& cases, const std::string& model, const std::string& file) {
  const std::string path = model_source(model) + "/" + file;
  const std::string id = model + "_" + identifier(fs::path(file).stem().string());
  const std::string bytes = testing::read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const SafetensorsParts parts = SafetensorsParts::read(path);

  // Truncation at every structural boundary: inside and after the length field, inside and at
  // the end of the header JSON, at every tensor's first and last data byte.
  for (size_t cut : parts.boundaries(header_len)) {
    cases.push_back({"truncated_" + id + "_at_" + std::to_string(cut), model,
                     [file, cut](const std::string& dir) { fs::resize_file(dir + "/" + file, cut); }, file});
  }

  // The first tensor entry (not __metadata__) and one 1-D tensor, by name.
  std::string first, vec;
  for (auto& [name, e] : parts.header.items()) {
    if (name == "__metadata__") continue;
    if (first.empty()) first = name;
    if (vec.empty() && e["shape"].size() == 1) vec = name;
  }
  auto header_case = [&](const std::string& what, std::function<void(ordered_json&)> edit, const std::string& mention) {
    cases.push_back({what + "_" + id, model,
                     [file, edit](const std::string& dir) { edit_header(dir + "/" + file, edit); }, mention});
  };
  for (const char* dtype : {"F64", "f32", "bf16", "FP8", "", "U8", "BF16 "})
    header_case("dtype_" + identifier(std::string(dtype) + "x"),
                [first, dtype](ordered_json& h) { h[first]["dtype"] = dtype; }, "unsupported dtype");
  header_case("dtype_not_a_string", [first](ordered_json& h) { h[first]["dtype"] = 4; }, "dtype is not a string");
  header_case("shape_bytes_disagree", [vec](ordered_json& h) { h[vec]["shape"][0] = h[vec]["shape"][0].get<int>() + 1; },
              "bytes but data_offsets span");
  header_case("negative_dimension", [vec](ordered_json& h) { h[vec]["shape"][0] = -64; }, "invalid dimension");
  header_case("shape_not_a_list", [vec](ordered_json& h) { h[vec]["shape"] = "64"; }, "shape is not a list");
  header_case("missing_data_offsets", [vec](ordered_json& h) { h[vec].erase("data_offsets"); }, "data_offsets");
  header_case("entry_not_an_object", [vec](ordered_json& h) { h[vec] = 1; }, "needs dtype, shape and data_offsets");
  header_case("offsets_past_the_end",
              [first, n = parts.data.size()](ordered_json& h) {
                size_t len = h[first]["data_offsets"][1].get<size_t>() - h[first]["data_offsets"][0].get<size_t>();
                h[first]["data_offsets"] = {n - len + 2, n + 2};
              },
              "outside");
  header_case("offsets_reversed",
              [first](ordered_json& h) {
                auto o = h[first]["data_offsets"];
                h[first]["data_offsets"] = {o[1], o[0]};
              },
              "outside");
  header_case("offsets_negative", [first](ordered_json& h) { h[first]["data_offsets"][0] = -2; },
              "two non-negative integers");
  // Two tensors of one size sharing bytes, and a tensor shifted two bytes into its neighbour.
  header_case("overlap_identical",
              [vec](ordered_json& h) {
                const ordered_json like = h[vec];
                for (auto& [name, e] : h.items())
                  if (name != vec && name != "__metadata__" && e["shape"] == like["shape"] && e["dtype"] == like["dtype"]) {
                    e["data_offsets"] = h[vec]["data_offsets"];
                    return;
                  }
              },
              "overlap");
  header_case("overlap_shifted",
              [vec](ordered_json& h) {
                auto& o = h[vec]["data_offsets"];
                if (o[0].get<size_t>() >= 2) {
                  o = {o[0].get<size_t>() - 2, o[1].get<size_t>() - 2};
                } else {
                  o = {o[0].get<size_t>() + 2, o[1].get<size_t>() + 2};
                }
              },
              "overlap");
  header_case("header_is_a_list", [](ordered_json& h) { h = ordered_json::array({1, 2}); }, "not a JSON object");
  // A duplicate name: JSON objects cannot hold one, so the header text is edited.
  cases.push_back({"duplicate_tensor_name_" + id, model,
                   [file, first](const std::string& dir) {
                     SafetensorsParts p = SafetensorsParts::read(dir + "/" + file);
                     std::string text = p.header.dump();
                     ordered_json entry = {{first, p.header[first]}};
                     std::string repeated = entry.dump();
                     text.insert(1, repeated.substr(1, repeated.size() - 2) + ",");
                     testing::write_file(dir + "/" + file, p.bytes(text));
                   },
                   "appears twice"});
  cases.push_back({"header_trailing_garbage_" + id, model,
                   [file](const std::string& dir) {
                     SafetensorsParts p = SafetensorsParts::read(dir + "/" + file);
                     testing::write_file(dir + "/" + file, p.bytes(p.header.dump() + "}x"));
                   },
                   "not valid JSON"});
  cases.push_back({"header_not_utf8_" + id, model,
                   [file](const std::string& dir) {
                     SafetensorsParts p = SafetensorsParts::read(dir + "/" + file);
                     std::string text = p.header.dump();
                     text.insert(text.find(':') - 1, "\xff\xfe");
                     testing::write_file(dir + "/" + file, p.bytes(text));
                   },
                   "not valid JSON"});
  // Header lengths no file can have.
  for (uint64_t n : {~uint64_t(0), uint64_t(1) << 63, uint64_t(1) << 40, (uint64_t(256) << 20) + 1,
                     uint64_t(bytes.size()) - 7}) {
    cases.push_back({"header_length_" + std::to_string(n) + "_" + id, model,
                     [file, n](const std::string& dir) { set_header_length(dir + "/" + file, n); }, "runs past the end"});
  }
  cases.push_back({"header_length_zero_" + id, model,
                   [file](const std::string& dir) { set_header_length(dir + "/" + file, 0); }, "not valid JSON"});
  cases.push_back({"empty_file_" + id, model,
                   [file](const std::string& dir) { testing::write_file(dir + "/" + file, ""); }, "too short"});
  cases.push_back({"unreadable_" + id, model,
                   [file](const std::string& dir) { chmod((dir + "/" + file).c_str(), 0); }, "cannot open", kBoth, true});
  cases.push_back({"directory_instead_of_" + id, model,
                   [file](const std::string& dir) {
                     fs::remove(dir + "/" + file);
                     fs::create_directory(dir + "/" + file);
                   },
                   "not a regular file"});
}

// Non-finite and non-float weights: only a run (kvlab-eval) reads the values.
void add_weight_value_cases(std::vector<Case>& cases) {
  struct Poke {
    const char* name;
    const char* model;
    const char* file;
    const char* tensor;
    size_t index;
    uint16_t bits;
    const char* mention;
  };
  for (const Poke& p : {Poke{"bf16_nan", "llama", kShard1, "model.layers.1.mlp.up_proj.weight", 77, 0x7fc0, "NaN"},
                        Poke{"bf16_negative_nan", "llama", kShard1, "model.embed_tokens.weight", 0, 0xffc1, "NaN"},
                        Poke{"bf16_pos_inf", "llama", kShard2, "lm_head.weight", 32767, 0x7f80, "+Inf"},
                        Poke{"bf16_neg_inf", "llama", kShard2, "model.norm.weight", 63, 0xff80, "-Inf"},
                        Poke{"f16_nan_qk_norm", "qwen3", kSingle, "model.layers.2.self_attn.k_norm.weight", 5, 0x7e01,
                             "NaN"},
                        Poke{"f16_neg_inf_qwen3", "qwen3", kSingle, "model.layers.0.mlp.gate_proj.weight", 100, 0xfc00,
                             "-Inf"}}) {
    cases.push_back({std::string("weights_") + p.name, p.model,
                     [p](const std::string& dir) { poke16(dir + "/" + p.file, p.tensor, p.index, p.bits); },
                     std::string(p.tensor) + "\" holds " + p.mention, kEval});
  }
  struct Store {
    const char* name;
    const char* file;
    const char* tensor;
    DType dtype;
    float value;
    const char* mention;
  };
  const float inf = std::numeric_limits<float>::infinity();
  for (const Store& s : {Store{"f32_nan", kShard1, "model.embed_tokens.weight", DType::F32, std::nanf(""), "NaN"},
                         Store{"f32_neg_inf", kShard1, "model.layers.0.self_attn.q_proj.weight", DType::F32, -inf, "-Inf"},
                         Store{"f16_inf", kShard2, "model.layers.2.input_layernorm.weight", DType::F16, inf, "+Inf"},
                         Store{"f16_overflow_to_inf", kShard2, "model.layers.2.mlp.up_proj.weight", DType::F16, 1e6f,
                               "+Inf"},
                         Store{"i32_weight", kShard2, "model.norm.weight", DType::I32, 1.0f, "has dtype I32"}}) {
    cases.push_back({std::string("weights_") + s.name, "llama",
                     [s](const std::string& dir) { store_as(dir + "/" + s.file, s.tensor, s.dtype, 3, s.value); },
                     std::string(s.tensor) + "\" " + (s.dtype == DType::I32 ? "" : "holds ") + s.mention, kEval});
  }
}

// Shapes that disagree with config.json: only kvlab-eval checks the checkpoint against it.
void add_shape_cases(std::vector<Case>& cases) {
  auto config_case = [&](const std::string& name, const std::string& model, std::function<void(ordered_json&)> edit,
                         const std::string& mention) {
    cases.push_back({"config_shapes_" + name, model,
                     [edit](const std::string& dir) { edit_json(dir + "/config.json", edit); }, mention, kEval});
  };
  config_case("intermediate_size", "llama", [](ordered_json& c) { c["intermediate_size"] = 192; }, "but the config needs");
  config_case("hidden_size", "llama", [](ordered_json& c) { c["hidden_size"] = 96; }, "but the config needs");
  config_case("vocab_size_larger", "llama", [](ordered_json& c) { c["vocab_size"] = 1024; }, "model.embed_tokens.weight");
  config_case("vocab_size_below_tokenizer", "llama", [](ordered_json& c) { c["vocab_size"] = 256; }, "vocab_size");
  config_case("more_layers", "llama", [](ordered_json& c) { c["num_hidden_layers"] = 4; }, "model.layers.3.");
  config_case("kv_heads", "qwen3", [](ordered_json& c) { c["num_key_value_heads"] = 4; }, "k_proj.weight");
  config_case("head_dim", "qwen3", [](ordered_json& c) { c["head_dim"] = 16; }, "but the config needs");
  config_case("untied_without_lm_head", "qwen2",
              [](ordered_json& c) { c["tie_word_embeddings"] = false; }, "lm_head.weight");
  config_case("attention_bias_absent", "llama", [](ordered_json& c) { c["attention_bias"] = true; },
              "q_proj.bias");
  // The bytes fit, the shape does not: a transposed matrix.
  cases.push_back({"transposed_down_proj", "llama",
                   [](const std::string& dir) {
                     edit_header(dir + "/" + kShard2, [](ordered_json& h) {
                       h["model.layers.2.mlp.down_proj.weight"]["shape"] = {160, 64};
                     });
                   },
                   "has shape [160, 64] but the config needs [64, 160]", kEval});
}

void add_index_cases(std::vector<Case>& cases) {
  const std::string index = "model.safetensors.index.json";
  auto index_text = [&](const std::string& name, std::function<std::string(const std::string&)> edit,
                        const std::string& mention) {
    cases.push_back({"index_" + name, "llama",
                     [index, edit](const std::string& dir) {
                       testing::write_file(dir + "/" + index, edit(testing::read_file(dir + "/" + index)));
                     },
                     mention});
  };
  auto index_json = [&](const std::string& name, std::function<void(ordered_json&)> edit, const std::string& mention,
                        unsigned apps = kBoth) {
    cases.push_back({"index_" + name, "llama", [index, edit](const std::string& dir) { edit_json(dir + "/" + index, edit); },
                     mention, apps});
  };
  index_text("empty", [](const std::string&) { return std::string(); }, "not a valid index");
  index_text("truncated", [](const std::string& s) { return s.substr(0, s.size() / 2); }, "not a valid index");
  index_text("a_list", [](const std::string&) { return std::string("[]"); }, "not a valid index");
  index_json("no_weight_map", [](ordered_json& j) { j.erase("weight_map"); }, "weight_map");
  index_json("weight_map_a_list", [](ordered_json& j) { j["weight_map"] = ordered_json::array(); }, "weight_map");
  index_json("entry_not_a_string", [](ordered_json& j) { j["weight_map"]["model.norm.weight"] = 2; },
             "is not a file name");
  index_json("escapes_the_directory",
             [](ordered_json& j) { j["weight_map"]["model.norm.weight"] = "../model-00002-of-00002.safetensors"; },
             "outside the model directory");
  index_json("absolute_path", [](ordered_json& j) { j["weight_map"]["model.norm.weight"] = "/etc/passwd"; },
             "outside the model directory");
  index_json("nul_in_a_shard_name",
             [](ordered_json& j) { j["weight_map"]["model.norm.weight"] = std::string("model-00002-of-00002.safetensors\0x", 34); },
             "outside the model directory");
  index_json("shard_name_too_long",
             [](ordered_json& j) { j["weight_map"]["model.norm.weight"] = std::string(300, 'x') + ".safetensors"; },
             "shard named by the index is missing (File name too long)");
  index_json("names_a_missing_shard",
             [](ordered_json& j) { j["weight_map"]["model.norm.weight"] = "model-00003-of-00003.safetensors"; },
             "model-00003-of-00003.safetensors: shard named by the index is missing");
  index_json("tensor_in_the_wrong_shard",
             [](ordered_json& j) { j["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors"; },
             "\"lm_head.weight\" named by the index is not in this file");
  index_json("names_an_absent_tensor",
             [](ordered_json& j) { j["weight_map"]["model.layers.7.mlp.up_proj.weight"] = "model-00002-of-00002.safetensors"; },
             "model.layers.7.mlp.up_proj.weight");
  index_json("drops_a_needed_tensor", [](ordered_json& j) { j["weight_map"].erase("model.layers.1.mlp.down_proj.weight"); },
             "model.layers.1.mlp.down_proj.weight", kEval);
  cases.push_back({"index_names_a_directory", "llama",
                   [index](const std::string& dir) {
                     fs::create_directory(dir + "/sub.safetensors");
                     edit_json(dir + "/" + index, [](ordered_json& j) { j["weight_map"]["model.norm.weight"] = "sub.safetensors"; });
                   },
                   "sub.safetensors: not a regular file"});
  cases.push_back({"index_unreadable", "llama", [index](const std::string& dir) { chmod((dir + "/" + index).c_str(), 0); },
                   index, kBoth, true});
}

void add_config_cases(std::vector<Case>& cases) {
  auto config_text = [&](const std::string& name, const std::string& text, const std::string& mention) {
    cases.push_back({"config_" + name, "llama",
                     [text](const std::string& dir) { testing::write_file(dir + "/config.json", text); }, mention});
  };
  auto config_json = [&](const std::string& name, std::function<void(ordered_json&)> edit, const std::string& mention) {
    cases.push_back({"config_" + name, "llama",
                     [edit](const std::string& dir) { edit_json(dir + "/config.json", edit); }, mention});
  };
  config_text("empty", "", "config.json: not valid JSON");
  config_text("truncated", R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 5)", "config.json: not valid JSON");
  config_text("a_list", "[1, 2, 3]", "config.json: not a JSON object");
  config_text("not_utf8", "{\"architectures\": [\"Llama\xff\"]}", "config.json: not valid JSON");
  config_json("no_architectures", [](ordered_json& c) { c.erase("architectures"); }, "\"architectures\"");
  config_json("unknown_architecture", [](ordered_json& c) { c["architectures"] = {"GPT2LMHeadModel"}; },
              "GPT2LMHeadModel");
  config_json("vocab_size_zero", [](ordered_json& c) { c["vocab_size"] = 0; }, "\"vocab_size\" must be a positive integer");
  config_json("vocab_size_negative", [](ordered_json& c) { c["vocab_size"] = -512; }, "\"vocab_size\"");
  config_json("vocab_size_a_string", [](ordered_json& c) { c["vocab_size"] = "512"; }, "\"vocab_size\"");
  config_json("vocab_size_fractional", [](ordered_json& c) { c["vocab_size"] = 512.5; }, "\"vocab_size\"");
  config_json("vocab_size_huge", [](ordered_json& c) { c["vocab_size"] = 1e12; }, "\"vocab_size\"");
  config_json("hidden_size_missing", [](ordered_json& c) { c.erase("hidden_size"); }, "\"hidden_size\" is missing");
  config_json("dimensions_overflow",
              [](ordered_json& c) {
                c["num_attention_heads"] = 1 << 20;
                c["num_key_value_heads"] = 1 << 20;
                c["head_dim"] = 1 << 20;
              },
              "more than 10^15 parameters");
  config_json("kv_heads_do_not_divide", [](ordered_json& c) { c["num_key_value_heads"] = 3; }, "\"num_key_value_heads\"");
  config_json("odd_head_dim", [](ordered_json& c) { c["head_dim"] = 15; }, "\"head_dim\"");
  config_json("gelu", [](ordered_json& c) { c["hidden_act"] = "gelu"; }, "\"hidden_act\"");
  config_json("rope_longrope", [](ordered_json& c) { c["rope_parameters"]["rope_type"] = "longrope"; }, "longrope");
  config_json("rope_yarn_beta", [](ordered_json& c) {
    c["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_fast", "fast"}};
  }, "beta_fast");
  config_json("rope_factor_negative", [](ordered_json& c) { c["rope_parameters"]["factor"] = -8; }, "\"factor\"");
  config_json("rope_frequencies_inverted", [](ordered_json& c) { c["rope_parameters"]["high_freq_factor"] = 0.5; },
              "high_freq_factor");
  config_json("sliding_window", [](ordered_json& c) { c["use_sliding_window"] = true; }, "\"use_sliding_window\"");
  config_json("mlp_bias", [](ordered_json& c) { c["mlp_bias"] = true; }, "\"mlp_bias\"");
  config_json("eos_negative", [](ordered_json& c) { c["eos_token_id"] = -1; }, "\"eos_token_id\"");
  config_json("tie_a_string", [](ordered_json& c) { c["tie_word_embeddings"] = "no"; }, "\"tie_word_embeddings\"");
  cases.push_back({"config_is_a_directory", "llama",
                   [](const std::string& dir) {
                     fs::remove(dir + "/config.json");
                     fs::create_directory(dir + "/config.json");
                   },
                   "config.json: is a directory"});
  cases.push_back({"config_dangling_symlink", "llama",
                   [](const std::string& dir) {
                     fs::remove(dir + "/config.json");
                     fs::create_symlink(dir + "/nowhere.json", dir + "/config.json");
                   },
                   "config.json: cannot open"});
  cases.push_back({"config_unreadable", "llama",
                   [](const std::string& dir) { chmod((dir + "/config.json").c_str(), 0); }, "config.json", kBoth, true});
}

// tokenizer.json: only kvlab-eval reads it.
void add_tokenizer_cases(std::vector<Case>& cases) {
  auto tok_text = [&](const std::string& name, std::function<std::string(const std::string&)> edit,
                      const std::string& mention) {
    cases.push_back({"tokenizer_" + name, "llama",
                     [edit](const std::string& dir) {
                       testing::write_file(dir + "/tokenizer.json", edit(testing::read_file(dir + "/tokenizer.json")));
                     },
                     mention, kEval});
  };
  auto tok_json = [&](const std::string& name, std::function<void(ordered_json&)> edit, const std::string& mention) {
    cases.push_back({"tokenizer_" + name, "llama",
                     [edit](const std::string& dir) { edit_json(dir + "/tokenizer.json", edit); }, mention, kEval});
  };
  tok_text("empty", [](const std::string&) { return std::string(); }, "tokenizer.json: malformed JSON");
  tok_text("truncated", [](const std::string& s) { return s.substr(0, s.size() / 3); }, "tokenizer.json: malformed JSON");
  tok_text("not_utf8", [](const std::string& s) { return "{\"x\": \"\xc3\x28\"," + s.substr(1); },
           "tokenizer.json: malformed JSON");
  tok_text("number_overflow", [](const std::string& s) { return "{\"x\": 1e999," + s.substr(1); },
           "tokenizer.json: malformed JSON");
  tok_text("a_list", [](const std::string&) { return std::string("[]"); }, "expected an object");
  tok_json("no_model", [](ordered_json& t) { t.erase("model"); }, "model: missing field");
  tok_json("wordpiece", [](ordered_json& t) { t["model"]["type"] = "WordPiece"; }, "model.type");
  tok_json("merge_of_unknown_token", [](ordered_json& t) { t["model"]["merges"][3] = "Ġzzz qqq"; }, "model.merges[3]");
  tok_json("merge_not_a_pair", [](ordered_json& t) { t["model"]["merges"][0] = ordered_json::array({"a"}); },
           "model.merges[0]");
  tok_json("vocab_id_negative", [](ordered_json& t) { t["model"]["vocab"]["a"] = -3; }, "model.vocab");
  tok_json("vocab_id_huge", [](ordered_json& t) { t["model"]["vocab"]["a"] = 1LL << 40; }, "model.vocab");
  tok_json("no_byte_level", [](ordered_json& t) { t["pre_tokenizer"]["pretokenizers"].erase(1); }, "ByteLevel");
  tok_json("no_decoder", [](ordered_json& t) { t["decoder"] = nullptr; }, "decoder");
  tok_json("bad_regex", [](ordered_json& t) { t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(\\p{L"; },
           "cannot compile the regex");
  tok_json("added_token_without_id", [](ordered_json& t) { t["added_tokens"][0].erase("id"); }, "added_tokens[0].id");
  tok_json("post_processor_unknown_token",
           [](ordered_json& t) { t["post_processor"]["single"][0]["SpecialToken"]["id"] = "<s>"; }, "<s>");
  cases.push_back({"tokenizer_missing", "llama", [](const std::string& dir) { fs::remove(dir + "/tokenizer.json"); },
                   "tokenizer.json: no such file", kEval});
  cases.push_back({"tokenizer_is_a_directory", "llama",
                   [](const std::string& dir) {
                     fs::remove(dir + "/tokenizer.json");
                     fs::create_directory(dir + "/tokenizer.json");
                   },
                   "tokenizer.json", kEval});
  cases.push_back({"tokenizer_config_unknown_eos", "llama",
                   [](const std::string& dir) {
                     edit_json(dir + "/tokenizer_config.json", [](ordered_json& c) { c["eos_token"] = "<|no_such|>"; });
                   },
                   "eos_token '<|no_such|>'", kEval});
  cases.push_back({"tokenizer_unreadable", "llama",
                   [](const std::string& dir) { chmod((dir + "/tokenizer.json").c_str(), 0); }, "tokenizer.json", kEval,
                   true});
}

// Model directories that are not model directories.
void add_directory_cases(std::vector<Case>& cases) {
  cases.push_back({"dir_without_config", "llama", [](const std::string& dir) { fs::remove(dir + "/config.json"); },
                   "a Hugging Face model directory?"});
  cases.push_back({"dir_without_weights", "qwen3", [](const std::string& dir) { fs::remove(dir + "/" + kSingle); },
                   "no model.safetensors or model.safetensors.index.json"});
  cases.push_back({"dir_without_any_shard", "llama",
                   [](const std::string& dir) {
                     fs::remove(dir + "/" + kShard1);
                     fs::remove(dir + "/" + kShard2);
                   },
                   "shard named by the index is missing"});
  cases.push_back({"dir_emptied", "llama",
                   [](const std::string& dir) {
                     for (const auto& e : fs::directory_iterator(dir)) fs::remove_all(e.path());
                   },
                   "a Hugging Face model directory?"});
  cases.push_back({"dir_is_a_file", "llama",
                   [](const std::string& dir) {
                     fs::remove_all(dir);
                     testing::write_file(dir, "not a directory");
                   },
                   "a Hugging Face model directory?"});
  cases.push_back({"dir_does_not_exist", "llama", [](const std::string& dir) { fs::remove_all(dir); },
                   "a Hugging Face model directory?"});
  cases.push_back({"dir_unreadable", "llama", [](const std::string& dir) { chmod(dir.c_str(), 0); }, "config.json", kBoth,
                   true});
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  add_safetensors_cases(cases, "llama", kShard1);
  add_safetensors_cases(cases, "llama", kShard2);
  add_safetensors_cases(cases, "qwen3", kSingle);
  add_weight_value_cases(cases);
  add_shape_cases(cases);
  add_index_cases(cases);
  add_config_cases(cases);
  add_tokenizer_cases(cases);
  add_directory_cases(cases);
  return cases;
}

// One case through one app: the unit the battery counts.
struct AppRun {
  Case c;
  AppMask app;
};

std::vector<AppRun> all_runs() {
  std::vector<AppRun> runs;
  for (const Case& c : all_cases())
    for (AppMask app : {kEval, kInspect})
      if (c.apps & app) runs.push_back({c, app});
  return runs;
}

void PrintTo(const AppRun& r, std::ostream* os) { *os << r.c.name << (r.app == kEval ? " via kvlab-eval" : " via kvlab-inspect"); }

class CorruptInput : public ::testing::TestWithParam<AppRun> {};

TEST_P(CorruptInput, ExitsTwoWithOneLineAndWritesNothing) {
  const AppRun& r = GetParam();
  if (r.c.needs_permissions && geteuid() == 0)
    GTEST_SKIP() << "running as root: file permissions do not stop root, so chmod 000 cannot make a file unreadable";
  const std::string work = testing::temp_dir();
  const std::string dir = work + "/model";
  fs::copy(model_source(r.c.model), dir, fs::copy_options::recursive);
  r.c.damage(dir);
  const std::string out_dir = work + "/results";
  fs::create_directories(out_dir);

  std::string command;
  if (r.app == kEval)
    command = testing::bin_dir() + "/kvlab-eval --model '" + dir + "' --samples 1 --depths 0.5 --context 256 --out '" +
              out_dir + "/report.json'";
  else
    command = testing::bin_dir() + "/kvlab-inspect '" + dir + "' --ctx 256 --backend cpu";
  const testing::CommandResult res = testing::run_command(command);
  // Undo what would stop the temporary directory's removal.
  chmod(dir.c_str(), 0755);

  EXPECT_EQ(res.exit_code, 2) << command << "\n" << res.err;
  EXPECT_EQ(std::count(res.err.begin(), res.err.end(), '\n'), 1) << res.err;
  EXPECT_EQ(res.err.rfind(r.app == kEval ? "kvlab-eval: error: " : "kvlab-inspect: error: ", 0), 0u) << res.err;
  EXPECT_NE(res.err.find(r.c.must_mention), std::string::npos) << "expected \"" << r.c.must_mention << "\" in: " << res.err;
  EXPECT_TRUE(fs::is_empty(out_dir)) << "the failed run left files in its output directory";
  EXPECT_TRUE(r.app == kInspect || res.out.empty()) << res.out;
}

INSTANTIATE_TEST_SUITE_P(Battery, CorruptInput, ::testing::ValuesIn(all_runs()),
                         [](const ::testing::TestParamInfo<AppRun>& info) {
                           return info.param.c.name + (info.param.app == kEval ? "_eval" : "_inspect");
                         });

// The count the issue asks for, kept honest by the same lists the tests run.
TEST(CorruptInputBattery, Size) {
  const std::vector<Case> cases = all_cases();
  const std::vector<AppRun> runs = all_runs();
  std::set<std::string> names;
  for (const Case& c : cases) EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name " << c.name;
  std::printf("corrupt-input battery: %zu malformations, %zu app runs\n", cases.size(), runs.size());
  EXPECT_GE(cases.size(), 150u);
}

}  // namespace
}  // namespace kvlab
