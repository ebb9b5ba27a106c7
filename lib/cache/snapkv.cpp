// SnapKV (Li et al., 2024; FasterDecoding/SnapKV snapkv_utils.py): once the prompt is in, the
// last `window` prompt queries vote for earlier tokens by attention; votes are pooled so
// neighbours of important tokens stay too; each head keeps its top tokens plus the window.
// Decoding then runs on the compressed prompt without further eviction.
#include "cache/snapkv.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace kvlab {

std::vector<float> pool_votes(const float* score, int n, int kernel, bool max_pool) {
  std::vector<float> out(size_t(std::max(n, 0)));
  const int pad = kernel / 2;
  for (int j = 0; j < n; j++) {
    float acc = max_pool ? -std::numeric_limits<float>::infinity() : 0.0f;
    for (int t = j - pad; t < j - pad + kernel; t++) {
      if (t < 0 || t >= n) continue;  // max: -inf padding; avg: zero padding, still counted
      acc = max_pool ? std::max(acc, score[t]) : acc + score[t];
    }
    out[size_t(j)] = max_pool ? acc : acc / float(kernel);
  }
  return out;
}

std::vector<int> snapkv_layer_budgets(const SnapKvSettings& s, int prompt) {
  std::vector<int> out(size_t(s.layers), s.budget);
  if (s.beta <= 0 || prompt <= s.budget || s.layers < 2) return out;
  // Split what lies beyond the window: the bottom layer gets max_n, the top min_n.
  const double spare = s.budget - s.window;
  double min_n = spare / s.beta;
  double max_n = 2 * spare - min_n;
  if (max_n > prompt - s.window) {
    max_n = prompt - s.window;
    min_n = 2 * spare - max_n;
  }
  if (min_n < 0) return out;
  for (int l = 0; l < s.layers; l++)
    out[size_t(l)] = s.window + int(std::lround(max_n - l * (max_n - min_n) / (s.layers - 1)));
  return out;
}

namespace {

class SnapKv final : public CachePolicy {
 public:
  explicit SnapKv(SnapKvSettings s) : s_(std::move(s)) {}
  std::string name() const override { return s_.name; }
  ScoreNeed score_need() const override { return ScoreNeed::PromptWindow; }
  int score_window() const override { return s_.window; }
  int max_kept_tokens() const override {
    return s_.beta > 0 ? s_.window + int(std::ceil(2 * (s_.budget - s_.window) - (s_.budget - s_.window) / s_.beta))
                       : s_.budget;
  }
  bool evicts_during_decode() const override { return false; }

  std::optional<KeepPlan> select(const CacheState& s) override {
    if (s.phase != CachePhase::Prefill || done_) return std::nullopt;
    done_ = true;
    KeepPlan plan(size_t(s.layers * s.kv_heads));
    bool change = false;
    const std::vector<int> budgets = snapkv_layer_budgets(s_, int(s.kept(0, 0).size()));
    for (int l = 0; l < s.layers; l++) {
      const int budget = budgets[size_t(l)];
      for (int h = 0; h < s.kv_heads; h++) {
        const int len = int(s.kept(l, h).size());
        std::vector<int32_t>& keep = plan[size_t(l * s.kv_heads + h)];
        keep.resize(size_t(len));
        std::iota(keep.begin(), keep.end(), 0);
        if (len <= budget) continue;
        change = true;
        const int prefix = len - s_.window;
        std::vector<float> votes = pool_votes(s.score_row(l, h), prefix, s_.kernel, s_.max_pool);
        std::vector<int32_t> chosen(keep.begin(), keep.begin() + prefix);
        std::stable_sort(chosen.begin(), chosen.end(),
                         [&](int32_t a, int32_t b) { return votes[size_t(a)] > votes[size_t(b)]; });
        chosen.resize(size_t(budget - s_.window));
        std::sort(chosen.begin(), chosen.end());
        for (int j = prefix; j < len; j++) chosen.push_back(j);
        keep = std::move(chosen);
      }
    }
    return change ? std::optional<KeepPlan>(std::move(plan)) : std::nullopt;
  }

 private:
  SnapKvSettings s_;
  bool done_ = false;
};

std::unique_ptr<CachePolicy> make(const PolicyArgs& a) { return make_snapkv(snapkv_settings("snapkv", a)); }

}  // namespace

SnapKvSettings snapkv_settings(const std::string& name, const PolicyArgs& a) {
  SnapKvSettings s;
  s.name = name;
  s.window = a.get_int("window");
  s.kernel = a.get_int("kernel");
  s.max_pool = a.get_string("pooling") == "max";
  s.layers = a.layers;
  s.budget = a.budget;
  return s;
}

std::unique_ptr<CachePolicy> make_snapkv(SnapKvSettings s) {
  if (s.budget <= s.window)
    fail("cache policy " + s.name + ": budget " + std::to_string(s.budget) +
         " does not exceed the observation window (" + std::to_string(s.window) + ")");
  return std::make_unique<SnapKv>(std::move(s));
}

extern const PolicyInfo kSnapKvPolicy{
    "snapkv",
    "SnapKV: at the end of the prompt, the last `window` queries vote; each head keeps its top-voted tokens",
    true,
    {{"window", ParamSpec::Int, 32, "observation window: last prompt queries that vote, always kept", 1, 1 << 20, {}},
     {"kernel", ParamSpec::Int, 7, "pooling kernel over neighbouring tokens' votes (odd)", 1, 1023, {}},
     {"pooling", ParamSpec::String, "max", "vote pooling", 0, 0, {"max", "avg"}}},
    make};

}  // namespace kvlab
