// LaCache against its reference code: in the reference's own protocol (one token at a time,
// the ladder after every step), kvlab keeps exactly the same original positions in every layer.
// tests/golden/lacache.safetensors is made by scripts/make_lacache_goldens.py from
// GATECH-EIC/LaCache ppl/lacache/kv_cache.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cache/lacache.h"
#include "model/safetensors.h"
#include "test_support.h"

namespace kvlab {
namespace {

TEST(LaCacheReference, KeptPositionsMatchTheReferenceCodeInEveryLayer) {
  const std::string path = testing::golden_dir() + "/lacache.safetensors";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (run scripts/make_lacache_goldens.py)";
  auto file = SafetensorsFile::open(path);
  ASSERT_GE(file->tensors().size(), 5u);
  for (const auto& [name, t] : file->tensors()) {
    LadderParams p;
    int tokens = 0;
    ASSERT_EQ(std::sscanf(name.c_str(), "L%d_C%d_S%d_O%d_T%d", &p.layers, &p.cache_size, &p.span, &p.overlap, &tokens), 5);
    p.sinks = 4;
    const int checkpoints = int(t.shape[0]), width = int(t.shape[2]);
    ASSERT_EQ(t.shape[1], p.layers);
    const int32_t* want = static_cast<const int32_t*>(t.data);

    LadderCompactor ladder(p);
    std::vector<std::vector<int32_t>> kept(size_t(p.layers));
    int checkpoint = 0, mismatches = 0;
    for (int step = 0; step < tokens; step++) {
      for (auto& k : kept) k.push_back(step);
      if (auto plan = ladder.compact(int(kept[0].size()))) {
        for (int l = 0; l < p.layers; l++) {
          std::vector<int32_t> next;
          for (int32_t slot : (*plan)[size_t(l)]) next.push_back(kept[size_t(l)][size_t(slot)]);
          kept[size_t(l)] = std::move(next);
        }
      }
      if (checkpoint < checkpoints && step == tokens * (checkpoint + 1) / checkpoints - 1) {
        for (int l = 0; l < p.layers; l++) {
          // Rows are padded with -1: the cache's length varies from step to step.
          const int32_t* row = want + (int64_t(checkpoint) * p.layers + l) * width;
          std::vector<int32_t> expected(row, std::find(row, row + width, -1));
          if (kept[size_t(l)] != expected && mismatches++ < 3)
            ADD_FAILURE() << name << " step " << step << " layer " << l << ": kept sets differ";
        }
        checkpoint++;
      }
    }
    EXPECT_EQ(checkpoint, checkpoints) << name;
    EXPECT_EQ(mismatches, 0) << name;
    std::printf("%s: %d checkpoints x %d layers identical to the reference\n", name.c_str(), checkpoints, p.layers);
  }
}

}  // namespace
}  // namespace kvlab
