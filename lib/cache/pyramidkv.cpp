// PyramidKV (Cai et al., 2024): SnapKV's voting with budgets that shrink with depth, an
// arithmetic sequence whose mean is the requested budget (kvpress pyramidkv_press.py).
#include "cache/snapkv.h"

namespace kvlab {
namespace {

std::unique_ptr<CachePolicy> make(const PolicyArgs& a) {
  SnapKvSettings s = snapkv_settings("pyramidkv", a);
  s.beta = a.get_float("beta");
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
