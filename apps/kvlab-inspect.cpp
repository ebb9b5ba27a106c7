// kvlab-inspect: what a checkpoint is and what a context length will cost in memory.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "run/cli.h"
#include "run/hf_overrides.h"
#include "model/config.h"
#include "model/memory_plan.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace {

int inspect_main(int argc, char** argv) {
  CLI::App app{"Describe a Hugging Face model directory and plan the memory of a run on it.", "kvlab-inspect"};
  std::string dir;
  int context = 8192;
  int chunk = kvlab::kDefaultPrefillChunk;
  std::string backend = "cuda";
  bool as_json = false;
  app.add_option("model_dir", dir, "Model directory (config.json + *.safetensors)")->required();
  app.add_option("--ctx", context, "Context length (tokens) the KV cache must hold")->check(CLI::PositiveNumber);
  app.add_option("--chunk", chunk, "Prefill chunk size (tokens), which sizes the workspace")->check(CLI::PositiveNumber);
  app.add_option("--backend", backend,
                 "Plan for this backend's element types: cuda (bf16 weights and KV) or cpu (fp32 everything)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_flag("--json", as_json, "Print JSON instead of text");
  std::string overrides;
  kvlab::add_hf_overrides_flag(app, overrides);
  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;

  kvlab::ModelConfig c = kvlab::load_model_config(dir, kvlab::hf_overrides_from_flag(overrides));
  kvlab::Checkpoint ckpt = kvlab::Checkpoint::open(dir);  // validates every file
  const kvlab::DType element = backend == "cpu" ? kvlab::DType::F32 : kvlab::DType::BF16;
  kvlab::PlanDTypes t{element, element, kvlab::DType::F32};
  kvlab::MemoryPlan plan = kvlab::plan_memory(c, context, chunk, t);

  nlohmann::json j = {{"model_dir", dir},
                      {"architecture", kvlab::architecture_name(c.arch)},
                      {"parameters", kvlab::parameter_count(c)},
                      {"checkpoint_files", ckpt.files()},
                      {"checkpoint_tensor_bytes", ckpt.total_bytes()},
                      {"layers", c.num_layers},
                      {"attention_heads", c.num_heads},
                      {"kv_heads", c.num_kv_heads},
                      {"head_dim", c.head_dim},
                      {"rope_scaling", c.rope_scaling.type},
                      {"context_window", c.context_window()},
                      {"backend", backend},
                      {"plan", kvlab::to_json(plan)}};
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  using kvlab::format_bytes;
  std::printf("model          %s\n", dir.c_str());
  std::printf("architecture   %s, %d layers, %d heads / %d KV heads, head_dim %d\n", kvlab::architecture_name(c.arch),
              c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim);
  const kvlab::RopeScaling& rs = c.rope_scaling;
  std::printf("positions      RoPE theta %g, %s", c.rope_theta, rs.type == "default" ? "no scaling" : rs.type.c_str());
  if (rs.type != "default") std::printf(" x%g", rs.factor);
  if (rs.type == "llama3" || rs.type == "yarn") std::printf(" over %d", rs.original_max_position);
  if (rs.type == "yarn") std::printf(", attention factor %.4f", rs.attention_factor);
  std::printf("; context window %d tokens\n", c.context_window());
  const double params = double(kvlab::parameter_count(c));
  std::printf("parameters     %.3f %s (%zu tensors in %zu files, %s)\n", params >= 1e9 ? params / 1e9 : params / 1e6,
              params >= 1e9 ? "B" : "M",
              ckpt.tensor_count(), ckpt.files().size(), format_bytes(ckpt.total_bytes()).c_str());
  std::printf("KV per token   K %s + V %s per layer (%s), %s over %d layers\n",
              format_bytes(plan.k_bytes_per_token_layer).c_str(), format_bytes(plan.v_bytes_per_token_layer).c_str(),
              kvlab::dtype_name(element), format_bytes(plan.kv_bytes / size_t(context)).c_str(), c.num_layers);
  std::printf("memory plan    at %d tokens: weights %s + KV %s + workspace %s = %s\n", context,
              format_bytes(plan.weight_bytes).c_str(), format_bytes(plan.kv_bytes).c_str(),
              format_bytes(plan.workspace_bytes).c_str(), format_bytes(plan.total()).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-inspect", inspect_main, argc, argv); }
