#pragma once
// How much memory a run needs, predicted from the config before anything is allocated.
#include <cstddef>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/dtype.h"
#include "model/config.h"

namespace kvlab {

struct MemoryPlan {
  int context = 0;                    // tokens the KV cache holds
  size_t weight_bytes = 0;
  size_t k_bytes_per_token_layer = 0;  // one token, one layer, all KV heads
  size_t v_bytes_per_token_layer = 0;
  size_t kv_bytes = 0;                // whole cache at `context`
  size_t workspace_bytes = 0;         // activations of one prefill chunk and one decode step
  // LeanK (lib/leank/demotion.h: plan_leank): the channel-pruned middle region, allocated
  // beside the full cache when the prompt is in, and the whole cache once the full region has
  // shrunk to sink + recent + accumulate. 0 without a mask.
  size_t leank_middle_bytes = 0;
  size_t leank_kv_bytes_after_prompt = 0;
  size_t total() const { return weight_bytes + kv_bytes + leank_middle_bytes + workspace_bytes; }
};

struct PlanDTypes {
  DType weight = DType::BF16;
  DType kv = DType::BF16;
  DType activation = DType::F32;
  DType mlp_scratch = DType::F32;  // Backend::mlp_scratch_dtype
};

// all_logits: the run takes every prompt token's logits (perplexity), so the workspace also
// holds a whole chunk of them in fp32.
MemoryPlan plan_memory(const ModelConfig& c, int context, int max_chunk, const PlanDTypes& t,
                       bool all_logits = false);
// K and V of one token over all layers and KV heads, stored as `kv`.
size_t kv_bytes_per_token(const ModelConfig& c, DType kv);
int64_t parameter_count(const ModelConfig& c);
nlohmann::json to_json(const MemoryPlan& p);
std::string format_bytes(size_t bytes);  // "1.50 GiB"
// Error (exit code 3) with predicted and available numbers when the plan does not fit.
void require_fits(const MemoryPlan& p, size_t available, const std::string& device);

class Backend;
// What a run may use on `backend`: its free memory, capped by the environment variable
// KVLAB_MEMORY_LIMIT when set ("64GiB", "512MiB", "1.5GB", "1000000"; K/M/G/T and KiB..TiB are
// powers of 1024, KB..TB of 1000), to keep headroom on a shared machine or to test the refusal.
// Error (exit code 2) naming the variable when its value is not a size.
size_t available_memory(const Backend& backend);
// require_fits against available_memory(backend); the message names the limit when it applied.
void require_fits(const MemoryPlan& p, const Backend& backend);

}  // namespace kvlab
