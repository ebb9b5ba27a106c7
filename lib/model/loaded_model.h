#pragma once
// Opening a model directory: config, validated checkpoint, memory check, upload.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"
#include "model/memory_plan.h"
#include "model/transformer.h"

namespace kvlab {

struct LoadedModel {
  std::string dir;
  nlohmann::json hf_overrides;  // merged into config.json (null: none); see load_model_config
  ModelConfig config;
  std::string sha256;           // config.json + safetensors files
  size_t checkpoint_bytes = 0;  // tensor data on disk
  MemoryPlan plan;              // what the memory check predicted for the run
  std::unique_ptr<Transformer> model;
};

// `context` sizes the memory check: the load is refused, before any allocation, when weights,
// a KV cache of `context` tokens and the workspace (of `chunk` prefill tokens, with all their
// logits when `all_logits`) will not fit in the backend's free memory.
LoadedModel load_model(const std::string& dir, Backend& backend, int context, bool hash = true,
                       int chunk = kDefaultPrefillChunk, bool all_logits = false,
                       const nlohmann::json& hf_overrides = nlohmann::json());

PlanDTypes plan_dtypes(const Backend& backend, const ModelConfig& c);

}  // namespace kvlab
