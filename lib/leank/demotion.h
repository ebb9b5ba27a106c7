#pragma once
// When LeanK moves tokens from the full region into the channel-pruned middle (docs/leank.md,
// "The inference layout"): after the prompt, everything between the first `sink` tokens and
// the last `recent`; while decoding, once a head's full region holds sink + recent + accumulate
// tokens, its oldest `accumulate` non-sink ones. The prompt itself is attended in full.
#include <algorithm>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace kvlab {

struct ChannelMask;

struct LeanKWindow {
  int sink = 128;        // the reference's defaults (minference/modules/leank.py)
  int recent = 768;
  int accumulate = 128;

  int full_capacity() const { return sink + recent + accumulate; }
  // Middle slots per head when at most `max_tokens` are cached per head. A cache policy that
  // evicts sink tokens shrinks the front, so the middle must then also hold what the sink held.
  int middle_capacity(int max_tokens, bool policy_evicts_front) const {
    return std::max(1, max_tokens - recent - (policy_evicts_front ? 0 : sink));
  }
  void validate() const;  // Error for negative sink, recent < 0, accumulate < 1
};

class Demoter {
 public:
  Demoter(Backend& b, LeanKWindow window) : b_(b), window_(window) {}
  const LeanKWindow& window() const { return window_; }

  // Demotes what is due (all that is past sink + recent once `after_prompt`); returns whether
  // anything moved. Keeps cache.host_length and cache.pruned.host_length in step.
  bool demote(KVCache& cache, bool after_prompt);

 private:
  Backend& b_;
  LeanKWindow window_;
  Tensor count_, keep_, keep_count_;  // staging, [layers, kv_heads (, capacity)]
};

// The middle region for `mask` on `cache` (backend/pruned_region.h) with `middle_capacity`
// slots per head, checked against what the backend supports.
void attach_channel_mask(Backend& b, KVCache& cache, const ChannelMask& mask, const LeanKWindow& window,
                         int middle_capacity);

struct MemoryPlan;
// Adds LeanK's middle region to `plan` (made for `plan.context` tokens) as attach_channel_mask
// sizes it, counting kept K channels and V only for heads that keep any.
void plan_leank(MemoryPlan& plan, const ChannelMask& mask, const LeanKWindow& window);

}  // namespace kvlab
