#pragma once
// Summary statistics for latency lists.
#include <vector>

namespace kvlab {

// Linear-interpolated percentile (p in [0, 100]) of `values`; 0 for an empty list.
double percentile(std::vector<double> values, double p);
double mean(const std::vector<double>& values);

}  // namespace kvlab
