// LaCache: a ladder-shaped cache. Older tokens are compacted in groups of B; layer i keeps A of
// each group at offset i mod (R + 1), so consecutive tokens survive in different layers and the
// union over layers spans far more context than any one layer holds. When the uncompacted room
// runs out, the whole ladder region is compacted again with a coarser stride ("startover"),
// so memory stays fixed however long generation runs. All KV heads of a layer keep the same
// slots; keys are re-rotated to their slot index (pos-shift), as the reference does.
#include "cache/lacache.h"

#include <cmath>

#include "cache/policy.h"
#include "core/error.h"

namespace kvlab {

namespace {
int ceil_div(int a, int b) { return int(std::ceil(double(a) / double(b))); }
}  // namespace

LadderCompactor::LadderCompactor(const LadderParams& p) : p_(p), cache_size_(p.cache_size), cursor_(p.sinks) {
  const std::string where = "cache policy lacache: ";
  if (p.span < 1 || p.span > p.layers)
    fail(where + "span " + std::to_string(p.span) + " must be between 1 and the model's " + std::to_string(p.layers) +
         " layers, so the ladder covers every layer");
  if (p.overlap < 0 || p.overlap >= p.span)
    fail(where + "overlap " + std::to_string(p.overlap) + " must be in [0, span)");
  before_ = 1 + ceil_div(p.layers - p.span, p.span - p.overlap);
  after_ = std::min(ceil_div(p.span, p.span - p.overlap), before_);
  reduce_ = before_ - after_;
  if (reduce_ < 1)
    fail(where + "span " + std::to_string(p.span) + " with overlap " + std::to_string(p.overlap) + " over " +
         std::to_string(p.layers) + " layers makes ladder groups that free no slots (before " + std::to_string(before_) +
         " = after " + std::to_string(after_) + "); use a smaller span");
  // The ladder needs room for at least one group beyond the sinks and one token per layer.
  const int minimum = p.sinks + p.layers + before_;
  if (p.cache_size < minimum)
    fail(where + "budget " + std::to_string(p.cache_size) + " is below sinks + layers + one ladder group (" +
         std::to_string(minimum) + ")");
}

int LadderCompactor::max_kept() const { return p_.cache_size + reduce_ / 2; }

std::optional<std::vector<std::vector<int32_t>>> LadderCompactor::compact(int seq_len) {
  if (seq_len <= cache_size_) return std::nullopt;
  const int L = p_.layers, B = before_, A = after_, R = reduce_, S = p_.sinks;
  if (!compensated_) {  // once: grow C by floor(R/2) so the average size matches the budget
    cache_size_ += R / 2;
    compensated_ = true;
  }
  const int need = seq_len - cache_size_;
  const int room = cache_size_ - cursor_ - L;
  const int can = (room / A) * R;
  const bool startover = need > can;
  const int increment = startover ? room : ceil_div(need, R) * A;
  const int groups = increment / A;

  int t = 0, B2 = 0, G2 = 0, increment2 = 0;
  if (startover) {
    const int can_once = ((cache_size_ - S - L) / A) * R;
    const int need2 = need - can;
    t = ceil_div(need2, can_once);
    B2 = B + (t - 1) * (B - 1);
    const int R2 = B2 - A;
    increment2 = ceil_div(need2, R2) * A;
    G2 = increment2 / A;
  }

  std::vector<std::vector<int32_t>> keep(static_cast<size_t>(L));
  for (int i = 0; i < L; i++) {
    std::vector<int32_t> first;  // indices into the current cache
    first.reserve(size_t(seq_len));
    for (int j = 0; j < cursor_; j++) first.push_back(j);
    for (int j = 0; j < groups; j++)
      for (int k = 0; k < A; k++) first.push_back(cursor_ + i % (R + 1) + B * j + k);
    for (int j = cursor_ + B * groups; j < seq_len; j++) first.push_back(j);
    // Indices ascend, so only the last can fall past the cache (a budget too small for the ladder).
    if (!first.empty() && first.back() >= seq_len)
      fail("cache policy lacache: ladder index " + std::to_string(first.back()) + " is past the " +
           std::to_string(seq_len) + "-entry cache; raise the budget or lower the span");
    if (!startover) {
      keep[size_t(i)] = std::move(first);
      continue;
    }
    // Re-compact everything after the sinks with a ladder t times coarser.
    std::vector<int32_t> sel;
    sel.reserve(first.size());
    for (int j = 0; j < S; j++) sel.push_back(j);
    for (int j = 0; j < G2; j++)
      for (int k = 0; k < A; k++) sel.push_back(S + i % (B2 - A + 1) + B2 * j + t * k);
    for (int j = S + B2 * G2; j < int(first.size()); j++) sel.push_back(j);
    std::vector<int32_t>& out = keep[size_t(i)];
    out.reserve(sel.size());
    for (int32_t idx : sel) {
      if (idx >= int(first.size()))
        fail("cache policy lacache: startover index " + std::to_string(idx) + " is past the " +
             std::to_string(first.size()) + "-entry cache; raise the budget or lower the span");
      out.push_back(first[size_t(idx)]);
    }
  }
  cursor_ = startover ? S + increment2 : cursor_ + increment;
  return keep;
}

namespace {

class LaCache final : public CachePolicy {
 public:
  explicit LaCache(const LadderParams& p) : ladder_(p) {}
  std::string name() const override { return "lacache"; }
  bool renumbers_positions() const override { return true; }
  int max_kept_tokens() const override { return ladder_.max_kept(); }

  std::optional<KeepPlan> select(const CacheState& s) override {
    const int len = int(s.kept(0, 0).size());
    auto layers = ladder_.compact(len);
    if (!layers) return std::nullopt;
    KeepPlan plan(size_t(s.layers * s.kv_heads));
    for (int l = 0; l < s.layers; l++)
      for (int h = 0; h < s.kv_heads; h++) plan[size_t(l * s.kv_heads + h)] = (*layers)[size_t(l)];
    return plan;
  }

 private:
  LadderCompactor ladder_;
};

std::unique_ptr<CachePolicy> make(const PolicyArgs& a) {
  LadderParams p;
  p.layers = a.layers;
  p.cache_size = a.budget;
  p.span = a.has("span") ? a.get_int("span") : (a.layers + 1) / 2;
  p.overlap = a.get_int("overlap");
  p.sinks = a.get_int("sinks");
  return std::make_unique<LaCache>(p);
}

}  // namespace

extern const PolicyInfo kLaCachePolicy{
    "lacache",
    "LaCache: ladder-shaped cache with iterative compaction (fixed memory for unbounded generation)",
    true,
    {{"span", ParamSpec::Int, nullptr, "layers a compacted token is kept in (default: half the layers, as the paper's 16 of 32)",
      1, 1 << 16, {}},
     {"overlap", ParamSpec::Int, 0, "overlap between consecutive ladder steps", 0, 1 << 16, {}},
     {"sinks", ParamSpec::Int, 4, "leading tokens every layer keeps (the reference's start_size)", 0, 1 << 20, {}}},
    make};

}  // namespace kvlab
