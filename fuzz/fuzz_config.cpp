// Arbitrary bytes as a model's config.json. load_model_config accepts them or throws a
// bad-input Error; an accepted config is one every later step can plan for without overflow:
// the parameter count, the memory plan at a long context, finite RoPE frequencies and attention
// factor, and a context window.
#include <cmath>
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
    for (float f : rope_inv_freq(c))
      if (!std::isfinite(f) || f < 0) fuzz::finding("a RoPE frequency that is not a finite non-negative number");
    if (!std::isfinite(rope_attention_scaling(c)) || rope_attention_scaling(c) <= 0)
      fuzz::finding("a RoPE attention factor that is not finite and positive");
    if (c.context_window() < 1) fuzz::finding("an empty context window");
  });
}
