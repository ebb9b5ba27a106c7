// Arbitrary bytes as model.safetensors.index.json beside real shards (the embedded tiny Llama's
// two) and a small valid one. Checkpoint::open accepts them or throws a bad-input Error; what it
// accepts names only tensors that exist, in the file the index says, with consistent records.
#include <filesystem>

#include "fuzz_support.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"

namespace {

// The model directory, made once: the real shards and config, plus small.safetensors.
const std::string& index_fixture() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const std::string d = kvlab::fuzz::scratch_dir() + "/index_model";
    fs::create_directories(d);
    const std::string real = kvlab::fuzz::source_dir() + "/datasets/models/tiny-random-llama";
    for (const char* name : {"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"})
      fs::copy_file(real + "/" + name, d + "/" + name, fs::copy_options::overwrite_existing);
    const std::string one(4, '\0');
    kvlab::write_safetensors(d + "/small.safetensors",
                             {{"a", kvlab::DType::F32, {2}, std::string(8, '\0')},
                              {"b", kvlab::DType::BF16, {1, 2}, one},
                              {"c", kvlab::DType::F16, {0}, ""}});
    return d;
  }();
  return dir;
}

}  // namespace

KVLAB_FUZZ_TARGET(safetensors_index) {
  using namespace kvlab;
  const std::string& dir = index_fixture();
  fuzz::write_file(dir + "/model.safetensors.index.json", data, size);
  fuzz::expect_only_bad_input([&] {
    Checkpoint c = Checkpoint::open(dir);
    size_t bytes = 0;
    for (const std::string& file : c.files())
      if (file.find('/') != std::string::npos) fuzz::finding("accepted a shard path outside the directory: " + file);
    for (const char* name : {"a", "b", "c", "lm_head.weight", "model.norm.weight", "model.embed_tokens.weight"}) {
      const TensorRecord* t = c.find(name);
      if (!t) continue;
      if (t->name != name) fuzz::finding(std::string("find(") + name + ") returned " + t->name);
      if (&c.require(name, t->shape) != t) fuzz::finding(std::string("require(") + name + ") disagrees with find");
      bytes += t->bytes;
    }
    if (bytes > c.total_bytes()) fuzz::finding("total_bytes is less than the tensors found");
  });
}
