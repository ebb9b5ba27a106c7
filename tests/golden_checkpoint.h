#pragma once
// The tiny checkpoints of datasets/models and transformers' goldens for them (tests/golden,
// made by scripts/make_goldens.py): what the CPU and the CUDA model tests are held to.
#include <cstdio>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "test_support.h"

namespace kvlab::testing {

struct Golden {
  std::vector<int32_t> prompt;
  std::vector<float> logits;  // [prompt, vocab]
  std::vector<int32_t> greedy;
  std::vector<float> margin;  // top-1 minus top-2 logit at each greedy step
};

template <typename T>
std::vector<T> tensor_values(const SafetensorsFile& f, const std::string& name) {
  const TensorRecord& r = f.tensors().at(name);
  const T* p = static_cast<const T*>(r.data);
  return std::vector<T>(p, p + r.numel());
}

inline Golden load_golden(const std::string& arch) {
  auto f = SafetensorsFile::open(golden_dir() + "/" + arch + ".safetensors");
  return {tensor_values<int32_t>(*f, "prompt_ids"), tensor_values<float>(*f, "logits"),
          tensor_values<int32_t>(*f, "greedy_ids"), tensor_values<float>(*f, "greedy_margin")};
}

// datasets/models/tiny-random-<arch>: llama, qwen2, qwen3 or qwen3-yarn.
inline std::string model_dir(const std::string& arch) { return source_dir() + "/datasets/models/tiny-random-" + arch; }

// Why a test of `arch` cannot run yet ("" when it can): its golden is made by transformers on the
// GPU machine, after the checkpoint it is made from lands.
inline std::string golden_missing(const std::string& arch) {
  const std::string path = golden_dir() + "/" + arch + ".safetensors";
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
    return "";
  }
  return "no " + path + " yet: scripts/make_goldens.py makes it with transformers (tests/golden/README.md)";
}

}  // namespace kvlab::testing
