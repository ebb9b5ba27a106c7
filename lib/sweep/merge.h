#pragma once
// Merging the shards of a sweep (Slurm array tasks, each writing results.shard-I-of-N.jsonl into
// the same directory) into results.jsonl and failures.jsonl. Idempotent: a line already merged
// is not added again, so merging twice, or after more shards finished, is safe.
#include <string>

namespace kvlab {

struct MergeCounts {
  size_t shard_files = 0;
  size_t added = 0;             // lines new to results.jsonl
  size_t already = 0;           // lines results.jsonl already had
  size_t failures_added = 0;    // failure records of runs still not complete
  size_t reports_restored = 0;  // report files rewritten from their line
};

MergeCounts merge_shards(const std::string& dir);

}  // namespace kvlab
