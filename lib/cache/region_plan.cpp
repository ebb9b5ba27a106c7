#include "cache/region_plan.h"

#include <algorithm>

namespace kvlab {

RegionPlans split_by_region(const KeepPlan& plan, const ChannelPrunedKV& middle) {
  const size_t n = plan.size();
  RegionPlans r;
  r.full.resize(n);
  r.middle.resize(n);
  r.front.assign(n, 0);
  r.shift.assign(2 * n * 2, 0);
  for (size_t lh = 0; lh < n; lh++) {
    const int32_t front = middle.host_front[lh], held = middle.host_length[lh];
    int32_t kept_front = 0, kept_middle = 0;
    r.full[lh].reserve(plan[lh].size());
    r.middle[lh].reserve(plan[lh].size());
    for (int32_t i : plan[lh]) {
      if (i < front) {
        r.full[lh].push_back(i);
        kept_front++;
      } else if (i < front + held) {
        r.middle[lh].push_back(i - front);
        kept_middle++;
      } else {
        r.full[lh].push_back(i - held);
      }
    }
    r.front[lh] = kept_front;
    // Full-region slots past the front count the middle before them; middle slots the front.
    r.shift[2 * lh] = kept_front, r.shift[2 * lh + 1] = kept_middle - held;
    r.shift[2 * (n + lh) + 1] = kept_front - front;
  }
  return r;
}

void scores_in_age_order(const std::vector<float>& full, int full_capacity, const std::vector<int32_t>& full_length,
                         const std::vector<float>& middle, const ChannelPrunedKV& region, std::vector<float>& out) {
  const size_t n = full_length.size(), row = size_t(full_capacity + region.capacity);
  out.assign(n * row, 0.0f);
  for (size_t lh = 0; lh < n; lh++) {
    const float* f = full.data() + lh * size_t(full_capacity);
    const float* m = middle.data() + lh * size_t(region.capacity);
    const int32_t front = region.host_front[lh], held = region.host_length[lh];
    float* o = out.data() + lh * row;
    o = std::copy(f, f + front, o);
    o = std::copy(m, m + held, o);
    std::copy(f + front, f + full_length[lh], o);
  }
}

}  // namespace kvlab
