// PyramidKV (Cai et al., 2024): SnapKV's voting with budgets that shrink with depth, an
// arithmetic sequence whose mean is the requested budget (kvpress pyramidkv_press.py).
#include <cmath>

#include "cache/snapkv.h"

namespace kvlab {
namespace {

std::vector<int> pyramid_budgets(int layers, int budget, int window, double beta) {
  // Split only what lies beyond the window: bottom layers get up to max_n, the top min_n.
  const double spare = budget - window;
  const double min_n = spare / beta;
  const double max_n = 2 * spare - min_n;
  std::vector<int> out(size_t(layers), budget);
  if (layers < 2) return out;
  for (int l = 0; l < layers; l++)
    out[size_t(l)] = window + int(std::lround(max_n - l * (max_n - min_n) / (layers - 1)));
  return out;
}

std::unique_ptr<CachePolicy> make(const PolicyArgs& a) {
  SnapKvSettings s;
  s.name = "pyramidkv";
  s.window = a.get_int("window");
  s.kernel = a.get_int("kernel");
  s.max_pool = a.get_string("pooling") == "max";
  s.layer_budgets = pyramid_budgets(a.layers, a.budget, s.window, a.get_float("beta"));
  return make_snapkv(std::move(s));
}

}  // namespace

extern const PolicyInfo kPyramidKvPolicy{
    "pyramidkv",
    "PyramidKV: SnapKV voting with per-layer budgets decreasing with depth (mean = budget)",
    true,
    {{"window", ParamSpec::Int, 32, "observation window: last prompt queries that vote, always kept", 1, 1 << 20, {}},
     {"kernel", ParamSpec::Int, 7, "pooling kernel over neighbouring tokens' votes (odd)", 1, 1023, {}},
     {"pooling", ParamSpec::String, "max", "vote pooling", 0, 0, {"max", "avg"}},
     {"beta", ParamSpec::Float, 20.0, "top layer keeps (budget - window) / beta beyond the window", 1.0, 1e6, {}}},
    make};

}  // namespace kvlab
