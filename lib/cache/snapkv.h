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
  int layers = 0;
  int budget = 0;        // mean tokens kept per head over the layers, window included
  int window = 32;       // last prompt queries that vote, and tokens always kept
  int kernel = 7;        // 1-D pooling of the votes over neighbouring tokens
  bool max_pool = true;  // max pooling (SnapKV's LongBench configs) or average
  double beta = 0;       // 0: every layer keeps `budget`; else PyramidKV's schedule
};

std::unique_ptr<CachePolicy> make_snapkv(SnapKvSettings settings);
// The settings SnapKV and PyramidKV share, from a policy's parameters (window, kernel, pooling).
SnapKvSettings snapkv_settings(const std::string& name, const PolicyArgs& args);
// Tokens each layer keeps of a `prompt`-token prompt. Uniform for SnapKV, and whenever the
// prompt fits the budget; PyramidKV: an arithmetic sequence decreasing with depth whose mean
// is the budget, its largest term clamped to the prompt (kvpress pyramidkv_press.py).
std::vector<int> snapkv_layer_budgets(const SnapKvSettings& s, int prompt);
// The pooled votes of one head: pool1d(score[0, n), kernel, stride 1, padding kernel/2),
// with -inf padding for max and zero padding counted in the average (torch's defaults).
std::vector<float> pool_votes(const float* score, int n, int kernel, bool max_pool);

}  // namespace kvlab
