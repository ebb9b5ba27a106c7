#include "model/memory_plan.h"

#include <cstdio>
#include <nlohmann/json.hpp>

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

MemoryPlan plan_memory(const ModelConfig& c, int context, int max_chunk, const PlanDTypes& t) {
  MemoryPlan p;
  p.context = context;
  p.weight_bytes = size_t(parameter_count(c)) * dtype_size(t.weight);
  p.k_bytes_per_token_layer = size_t(c.kv_dim()) * dtype_size(t.kv);
  p.v_bytes_per_token_layer = p.k_bytes_per_token_layer;
  // Plus an I32 position per slot and head.
  size_t per_token = size_t(c.num_layers) *
                     (p.k_bytes_per_token_layer + p.v_bytes_per_token_layer + size_t(c.num_kv_heads) * 4);
  p.kv_bytes = per_token * size_t(context);
  // The transformer's workspace: x, norm, q, k, v, attn, o, gate, up, act, mlp per token, F32 logits.
  size_t per_row = size_t(4 * c.hidden_size + 2 * c.q_dim() + 2 * c.kv_dim() + 3 * c.intermediate_size) *
                   dtype_size(t.activation);
  p.workspace_bytes = per_row * size_t(max_chunk + 1) + size_t(c.vocab_size) * 4;
  return p;
}

nlohmann::json to_json(const MemoryPlan& p) {
  return {{"context_tokens", p.context},
          {"weight_bytes", p.weight_bytes},
          {"k_bytes_per_token_per_layer", p.k_bytes_per_token_layer},
          {"v_bytes_per_token_per_layer", p.v_bytes_per_token_layer},
          {"kv_bytes", p.kv_bytes},
          {"workspace_bytes", p.workspace_bytes},
          {"total_bytes", p.total()}};
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

}  // namespace kvlab
