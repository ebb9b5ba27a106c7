#include "run/hf_overrides.h"

#include "core/json_input.h"

namespace kvlab {

void add_hf_overrides_flag(CLI::App& app, std::string& text) {
  app.add_option("--hf-overrides", text,
                 "JSON merged into the model's config.json, e.g. YaRN for Qwen past 32K: "
                 "'{\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, "
                 "\"original_max_position_embeddings\": 32768}}' (rope_scaling, rope_parameters, rope_theta, "
                 "max_position_embeddings)");
}

nlohmann::json hf_overrides_from_flag(const std::string& text) {
  if (text.empty()) return nullptr;
  return parse_json_input(text, "--hf-overrides");
}

}  // namespace kvlab
