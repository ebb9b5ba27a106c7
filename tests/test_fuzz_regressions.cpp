// Replays every saved fuzz input through the same target code libFuzzer runs: the seed corpora
// (fuzz/corpus/<target>/) and the reproducers of what the fuzzers found (fuzz/regressions/
// <target>/). CI checks them on every build, without clang; scripts/fuzz_smoke.sh fuzzes anew.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "test_support.h"

#define KVLAB_FUZZ_REPLAY
#define KVLAB_FUZZ_SOURCE_DIR KVLAB_TEST_SOURCE_DIR
#define KVLAB_FUZZ_TOKENIZER_DIR KVLAB_TEST_TOKENIZER_DIR
#include "../fuzz/fuzz_config.cpp"
#include "../fuzz/fuzz_jsonl_dataset.cpp"
#include "../fuzz/fuzz_safetensors_header.cpp"
#include "../fuzz/fuzz_safetensors_index.cpp"
#include "../fuzz/fuzz_sweep_file.cpp"
#include "../fuzz/fuzz_tokenizer_encode.cpp"
#include "../fuzz/fuzz_tokenizer_load.cpp"

namespace kvlab {
namespace {

namespace fs = std::filesystem;

// Every target that has saved inputs, by directory name.
std::vector<std::string> targets_with_inputs() {
  std::set<std::string> names;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(testing::source_dir()) / "fuzz" / kind;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory()) names.insert(e.path().filename().string());
  }
  return {names.begin(), names.end()};
}

class FuzzInputs : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzInputs, ReplayWithoutFindings) {
  const std::string& name = GetParam();
  auto target = fuzz::targets().find(name);
  ASSERT_NE(target, fuzz::targets().end()) << "fuzz/*/" << name << "/ has inputs but no fuzz target of that name";
  if (name == "tokenizer_encode" && !fs::exists(testing::tokenizer_dir() + "/llama3_1/tokenizer.json"))
    GTEST_SKIP() << "no tokenizers in " << testing::tokenizer_dir() << " (run scripts/fetch_tokenizers.sh)";
  int replayed = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(testing::source_dir()) / "fuzz" / kind / name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file() || e.path().filename() == "README.md") continue;
      const std::string bytes = testing::read_file(e.path().string());
      try {
        target->second(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      } catch (const std::exception& ex) {
        ADD_FAILURE() << e.path().string() << ": " << ex.what();
      }
      replayed++;
    }
  }
  EXPECT_GT(replayed, 0);
}

INSTANTIATE_TEST_SUITE_P(Saved, FuzzInputs, ::testing::ValuesIn(targets_with_inputs()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace kvlab
