#pragma once
// Splitting a sweep over independent processes (Slurm array tasks): sort the runs by id (stable,
// so the split does not depend on the sweep file's order), then shard i of n takes every run at
// a position p with p mod n == i. Each shard keeps the sweep file's order for its own runs.
#include <string>
#include <vector>

#include "sweep/sweep_file.h"

namespace kvlab {

struct Shard {
  int index = 0;
  int count = 1;
  bool whole() const { return count == 1; }
  std::string name() const;  // "2-of-8"
};

// "i/n" with 0 <= i < n; Error naming --shard otherwise.
Shard parse_shard(const std::string& text);
std::vector<const SweepRun*> select_shard(const std::vector<SweepRun>& runs, const Shard& shard);

}  // namespace kvlab
