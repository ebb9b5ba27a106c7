// The full cache: every token stays. The baseline every other policy is measured against.
#include "cache/policy.h"

namespace kvlab {
namespace {

class FullCache final : public CachePolicy {
 public:
  std::string name() const override { return "full"; }
  int max_kept_tokens() const override { return 0; }
  bool evicts_during_decode() const override { return false; }
  std::optional<KeepPlan> select(const CacheState&) override { return std::nullopt; }
};

std::unique_ptr<CachePolicy> make(const PolicyArgs&) { return std::make_unique<FullCache>(); }

}  // namespace

extern const PolicyInfo kFullPolicy{"full", "keep every token (no budget)", false, {}, make};

}  // namespace kvlab
