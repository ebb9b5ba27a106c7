// H2O (Zhang et al., 2023): keep the recent window plus the "heavy hitters", the tokens with the
// largest attention mass accumulated over every query so far, per KV head.
#include <algorithm>
#include <numeric>

#include "cache/policy.h"
#include "core/error.h"

namespace kvlab {
namespace {

class H2o final : public CachePolicy {
 public:
  H2o(int budget, int recent) : budget_(budget), recent_(recent) {}
  std::string name() const override { return "h2o"; }
  ScoreNeed score_need() const override { return ScoreNeed::AllQueries; }
  int max_kept_tokens() const override { return budget_; }

  std::optional<KeepPlan> select(const CacheState& s) override {
    KeepPlan plan(size_t(s.layers * s.kv_heads));
    bool change = false;
    // Heads are independent: at 8B / 32K a call ranks 256 lists of ~8K scores, on every core.
#pragma omp parallel
    {
      std::vector<int32_t> order;  // one per thread, reused over its heads
#pragma omp for schedule(dynamic) reduction(|| : change)
      for (int lh = 0; lh < s.layers * s.kv_heads; lh++) {
        const int l = lh / s.kv_heads, h = lh % s.kv_heads;
        const int len = int(s.kept(l, h).size());
        std::vector<int32_t>& keep = plan[size_t(lh)];
        if (len <= budget_) {
          keep.resize(size_t(len));
          std::iota(keep.begin(), keep.end(), 0);
          continue;
        }
        change = true;
        const float* score = s.score_row(l, h);
        // Heavy hitters among the older slots: largest score first, earlier slot on ties. The
        // order is strict, so the (budget - recent)-th heaviest splits the older slots exactly
        // and one pass in slot order keeps those at or above it, already ascending.
        const auto heavier = [&](int32_t a, int32_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); };
        const int old = len - recent_, hitters = budget_ - recent_;
        order.resize(size_t(old));
        std::iota(order.begin(), order.end(), 0);
        std::nth_element(order.begin(), order.begin() + (hitters - 1), order.end(), heavier);
        const int32_t last = order[size_t(hitters - 1)];
        keep.reserve(size_t(budget_));
        for (int32_t j = 0; j < old; j++)
          if (j == last || heavier(j, last)) keep.push_back(j);
        for (int32_t j = old; j < len; j++) keep.push_back(j);
      }
    }
    return change ? std::optional<KeepPlan>(std::move(plan)) : std::nullopt;
  }

 private:
  int budget_, recent_;
};

std::unique_ptr<CachePolicy> make(const PolicyArgs& a) {
  const int recent = a.has("recent") ? a.get_int("recent") : a.budget / 2;
  if (recent < 1 || recent >= a.budget)
    fail("cache policy h2o: recent (" + std::to_string(recent) + ") must be at least 1 and below the budget (" +
         std::to_string(a.budget) + ")");
  return std::make_unique<H2o>(a.budget, recent);
}

}  // namespace

extern const PolicyInfo kH2oPolicy{
    "h2o",
    "H2O: recent tokens plus heavy hitters by accumulated attention, per KV head",
    true,
    {{"recent", ParamSpec::Int, nullptr, "recent tokens always kept (default: budget / 2; the rest are heavy hitters)",
      1, 1 << 30, {}}},
    make};

}  // namespace kvlab
