// Arbitrary bytes as a model's config.json. load_model_config accepts them or throws a
// bad-input Error; an accepted config is one every later step can plan for without overflow:
// the parameter count, the memory plan at a long context and the RoPE frequencies.
#include <filesystem>

#include "fuzz_support.h"
#include "model/config.h"
#include "model/memory_plan.h"
#include "model/rope.h"

KVLAB_FUZZ_TARGET(config) {
  using namespace kvlab;
  static const std::string dir = [] {
    std::string d = fuzz::scratch_dir() + "/config_model";
    std::filesystem::create_directories(d);
    return d;
  }();
  fuzz::write_file(dir + "/config.json", data, size);
  fuzz::expect_only_bad_input([&] {
    const ModelConfig c = load_model_config(dir);
    if (c.head_dim <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
      fuzz::finding("accepted inconsistent heads");
    parameter_count(c);
    plan_memory(c, 131072, 512, {DType::BF16, DType::BF16, DType::F32});
    rope_inv_freq(c);
    rope_attention_scaling(c);
  });
}
