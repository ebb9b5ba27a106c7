// StreamingLLM (Xiao et al., 2024; mit-han-lab/streaming-llm kv_cache.py): attention sinks
// plus a window of recent tokens, applied whenever the cache is over sinks + window.
#include <numeric>

#include "cache/policy.h"
#include "core/error.h"

namespace kvlab {
namespace {

class StreamingLlm final : public CachePolicy {
 public:
  StreamingLlm(int sinks, int window, bool renumber) : sinks_(sinks), window_(window), renumber_(renumber) {}
  std::string name() const override { return "streaming"; }
  bool renumbers_positions() const override { return renumber_; }
  int max_kept_tokens() const override { return sinks_ + window_; }

  std::optional<KeepPlan> select(const CacheState& s) override {
    KeepPlan plan(size_t(s.layers * s.kv_heads));
    bool change = false;
    for (size_t i = 0; i < plan.size(); i++) {
      const int len = int((*s.positions)[i].size());
      std::vector<int32_t>& keep = plan[i];
      if (len <= sinks_ + window_) {
        keep.resize(size_t(len));
        std::iota(keep.begin(), keep.end(), 0);
        continue;
      }
      change = true;
      keep.resize(size_t(sinks_ + window_));
      std::iota(keep.begin(), keep.begin() + sinks_, 0);
      std::iota(keep.begin() + sinks_, keep.end(), len - window_);
    }
    return change ? std::optional<KeepPlan>(std::move(plan)) : std::nullopt;
  }

 private:
  int sinks_, window_;
  bool renumber_;
};

std::unique_ptr<CachePolicy> make(const PolicyArgs& a) {
  const int sinks = a.get_int("sinks");
  const int window = a.has("window") ? a.get_int("window") : a.budget - sinks;
  if (window < 1 || sinks + window != a.budget)
    fail("cache policy streaming: budget " + std::to_string(a.budget) + " must equal sinks (" + std::to_string(sinks) +
         ") + window (" + (a.has("window") ? std::to_string(window) : std::string("derived")) + ") with a window >= 1");
  return std::make_unique<StreamingLlm>(sinks, window, a.get_string("positions") == "renumber");
}

}  // namespace

extern const PolicyInfo kStreamingLlmPolicy{
    "streaming",
    "StreamingLLM: the first `sinks` tokens plus the most recent `window` tokens",
    true,
    {{"sinks", ParamSpec::Int, 4, "attention-sink tokens kept from the start", 0, 1 << 20, {}},
     {"window", ParamSpec::Int, nullptr, "recent tokens kept (default: budget - sinks)", 1, 1 << 30, {}},
     {"positions", ParamSpec::String, "renumber",
      "renumber: keys re-rotated to their index in the cache (StreamingLLM's pos-shift); original: keep token positions",
      0, 0, {"renumber", "original"}}},
    make};

}  // namespace kvlab
