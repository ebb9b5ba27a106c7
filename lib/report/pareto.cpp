#include "report/pareto.h"

#include <algorithm>

namespace kvlab {

std::vector<size_t> pareto_front(const std::vector<std::pair<double, double>>& points, bool y_higher_is_better) {
  auto better_or_equal = [&](double a, double b) { return y_higher_is_better ? a >= b : a <= b; };
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); i++) {
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; j++) {
      if (j == i) continue;
      const auto& [xi, yi] = points[i];
      const auto& [xj, yj] = points[j];
      dominated = xj <= xi && better_or_equal(yj, yi) && (xj < xi || yj != yi);
    }
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    return points[a].first != points[b].first ? points[a].first < points[b].first : a < b;
  });
  return front;
}

}  // namespace kvlab
