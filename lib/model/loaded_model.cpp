#include "model/loaded_model.h"

#include "model/memory_plan.h"
#include "model/safetensors.h"

namespace kvlab {

namespace {
DType checkpoint_dtype(const ModelConfig& c) {
  if (c.torch_dtype == "float32") return DType::F32;
  if (c.torch_dtype == "float16") return DType::F16;
  return DType::BF16;
}
}  // namespace

PlanDTypes plan_dtypes(const Backend& backend, const ModelConfig& c) {
  return {backend.weight_dtype(checkpoint_dtype(c)), backend.kv_dtype(), backend.activation_dtype(),
          backend.mlp_scratch_dtype()};
}

LoadedModel load_model(const std::string& dir, Backend& backend, int context, bool hash, int chunk,
                       bool all_logits, const nlohmann::json& hf_overrides) {
  LoadedModel m;
  m.dir = dir;
  m.hf_overrides = hf_overrides;
  m.config = load_model_config(dir, hf_overrides);
  Checkpoint ckpt = Checkpoint::open(dir);
  m.checkpoint_bytes = ckpt.total_bytes();
  m.plan = plan_memory(m.config, context, chunk, plan_dtypes(backend, m.config), all_logits);
  require_fits(m.plan, backend);
  if (hash) m.sha256 = ckpt.content_sha256();
  m.model = std::make_unique<Transformer>(m.config, backend, load_weights(m.config, ckpt, backend), chunk);
  return m;
}

}  // namespace kvlab
