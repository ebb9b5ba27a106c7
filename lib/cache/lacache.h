#pragma once
// LaCache's ladder (Shi et al., ICML 2025; GATECH-EIC/LaCache ppl/lacache/kv_cache.py), as a
// pure state machine over slot indices so it can be checked against the reference code.
#include <cstdint>
#include <optional>
#include <vector>

namespace kvlab {

struct LadderParams {
  int layers = 0;
  int cache_size = 0;  // C: entries each layer keeps after compaction (before compensation)
  int span = 0;        // layers a compacted token survives in (nominally)
  int overlap = 0;     // overlap of consecutive ladder steps
  int sinks = 4;       // leading tokens every layer keeps (the reference's start_size)
};

class LadderCompactor {
 public:
  explicit LadderCompactor(const LadderParams& p);  // throws Error for a ladder that cannot work

  // The cache holds `seq_len` entries in every layer. Returns, per layer, the ascending slot
  // indices to keep, or nullopt while it fits. Mutates the ladder cursor exactly as the
  // reference does, including its one-time compensation and its "startover" re-compaction.
  std::optional<std::vector<std::vector<int32_t>>> compact(int seq_len);

  int max_kept() const;  // entries per layer right after a compaction (cache size + compensation)
  int group_before() const { return before_; }  // B: tokens per ladder group before compaction
  int group_after() const { return after_; }    // A: tokens each layer keeps of a group

 private:
  LadderParams p_;
  int before_, after_, reduce_;
  int cache_size_;
  int cursor_;
  bool compensated_ = false;
};

}  // namespace kvlab
