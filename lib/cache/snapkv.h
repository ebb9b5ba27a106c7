#pragma once
// SnapKV's prompt compression, shared by SnapKV (one budget for every layer) and PyramidKV
// (a budget per layer).
#include <memory>
#include <string>
#include <vector>

#include "cache/policy.h"

namespace kvlab {

struct SnapKvSettings {
  std::string name;
  std::vector<int> layer_budgets;  // tokens kept per head in each layer, window included
  int window = 32;                 // last prompt queries that vote, and tokens always kept
  int kernel = 7;                  // 1-D pooling of the votes over neighbouring tokens
  bool max_pool = true;            // max pooling (SnapKV's LongBench configs) or average
};

std::unique_ptr<CachePolicy> make_snapkv(SnapKvSettings settings);
// The pooled votes of one head: pool1d(score[0, n), kernel, stride 1, padding kernel/2),
// with -inf padding for max and zero padding counted in the average (torch's defaults).
std::vector<float> pool_votes(const float* score, int n, int kernel, bool max_pool);

}  // namespace kvlab
