#include "model/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"

namespace kvlab {

int64_t parameter_count(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  int64_t layer = h * q + 2 * h * kv + q * h + 3 * h * inter + 2 * h;
  if (c.attention_bias) layer += q + 2 * kv;
  if (c.qk_norm) layer += 2 * c.head_dim;
  int64_t total = int64_t(c.num_layers) * layer + int64_t(c.vocab_size) * h + h;
  if (!c.tie_word_embeddings) total += int64_t(c.vocab_size) * h;
  return total;
}

MemoryPlan plan_memory(const ModelConfig& c, int context, int max_chunk, const PlanDTypes& t, bool all_logits) {
  MemoryPlan p;
  p.context = context;
  p.weight_bytes = size_t(parameter_count(c)) * dtype_size(t.weight);
  p.k_bytes_per_token_layer = size_t(c.kv_dim()) * dtype_size(t.kv);
  p.v_bytes_per_token_layer = p.k_bytes_per_token_layer;
  // Plus an I32 position per slot and head.
  size_t per_token = size_t(c.num_layers) *
                     (p.k_bytes_per_token_layer + p.v_bytes_per_token_layer + size_t(c.num_kv_heads) * 4);
  p.kv_bytes = per_token * size_t(context);
  // The transformer's workspaces, a chunk's and a decode step's: x, norm, q, k, v, attn per
  // token, a backend's stacked q/k/v (Backend::attention_input), the MLP's gate, up and act, and
  // F32 logits of the last token (of every token in a chunk: all_logits).
  size_t per_row = size_t(2 * c.hidden_size + 3 * c.q_dim() + 4 * c.kv_dim()) * dtype_size(t.activation) +
                   size_t(3 * c.intermediate_size) * dtype_size(t.mlp_scratch);
  const size_t logit_rows = 2 + (all_logits ? size_t(max_chunk) : 0);
  p.workspace_bytes = per_row * size_t(max_chunk + 1) + size_t(c.vocab_size) * 4 * logit_rows;
  return p;
}

size_t kv_bytes_per_token(const ModelConfig& c, DType kv) {
  return size_t(c.num_layers) * 2 * size_t(c.kv_dim()) * dtype_size(kv);
}

nlohmann::json to_json(const MemoryPlan& p) {
  nlohmann::json j = {{"context_tokens", p.context},
          {"weight_bytes", p.weight_bytes},
          {"k_bytes_per_token_per_layer", p.k_bytes_per_token_layer},
          {"v_bytes_per_token_per_layer", p.v_bytes_per_token_layer},
          {"kv_bytes", p.kv_bytes},
          {"workspace_bytes", p.workspace_bytes},
          {"total_bytes", p.total()}};
  if (p.leank_middle_bytes > 0) {
    j["leank_middle_bytes"] = p.leank_middle_bytes;
    j["leank_kv_bytes_after_prompt"] = p.leank_kv_bytes_after_prompt;
  }
  return j;
}

std::string format_bytes(size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

void require_fits(const MemoryPlan& p, size_t available, const std::string& device) {
  if (p.total() <= available) return;
  fail("the run needs " + format_bytes(p.total()) + " (weights " + format_bytes(p.weight_bytes) + " + KV cache " +
           format_bytes(p.kv_bytes) + " for " + std::to_string(p.context) + " tokens + workspace " +
           format_bytes(p.workspace_bytes) + ") but only " + format_bytes(available) + " is free on " + device,
       kExitNoMemory);
}

namespace {

constexpr const char* kLimitVariable = "KVLAB_MEMORY_LIMIT";

// "512MiB" -> 536870912; anything else, or less than one byte, is an Error naming the variable.
size_t parse_size(const std::string& text) {
  auto bad = [&] {
    fail(std::string(kLimitVariable) + "=\"" + text +
         "\" is not a size (examples: 64GiB, 512MiB, 1.5GB, 1000000)");
  };
  size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) pos++;
  const std::string number = text.substr(0, pos);
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  if (pos == 0 || end != number.c_str() + number.size()) bad();
  std::string unit = text.substr(pos);
  for (char& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},         {"B", 1},          {"K", 0x1p10},    {"KIB", 0x1p10}, {"KB", 1e3},
      {"M", 0x1p20},   {"MIB", 0x1p20},   {"MB", 1e6},      {"G", 0x1p30},   {"GIB", 0x1p30},
      {"GB", 1e9},     {"T", 0x1p40},     {"TIB", 0x1p40},  {"TB", 1e12}};
  double scale = 0;
  for (const auto& [name, factor] : kUnits)
    if (unit == name) scale = factor;
  const double bytes = value * scale;
  if (scale == 0 || !(bytes >= 1) || bytes > 1e18) bad();
  return size_t(bytes);
}

}  // namespace

size_t available_memory(const Backend& backend) {
  const size_t free = backend.free_memory();
  const char* limit = std::getenv(kLimitVariable);
  if (!limit || !*limit) return free;
  return std::min(free, parse_size(limit));
}

void require_fits(const MemoryPlan& p, const Backend& backend) {
  std::string device = backend.description();
  if (const char* limit = std::getenv(kLimitVariable); limit && *limit)
    device += " (capped by " + std::string(kLimitVariable) + "=" + limit + ")";
  require_fits(p, available_memory(backend), device);
}

}  // namespace kvlab
