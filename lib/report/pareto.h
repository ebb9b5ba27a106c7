#pragma once
// The Pareto front of (memory, quality) points: those no other point beats on both, i.e. none
// uses no more memory and scores at least as well while being strictly better on one of them.
#include <cstddef>
#include <utility>
#include <vector>

namespace kvlab {

// Indices into `points` (x: memory, lower is better; y: quality), sorted by x.
std::vector<size_t> pareto_front(const std::vector<std::pair<double, double>>& points, bool y_higher_is_better);

}  // namespace kvlab
