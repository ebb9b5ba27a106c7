#pragma once
// The summary as CSV (RFC 4180): one row per run; identity columns, every numeric field of
// fields.h (raw numbers, full precision, empty when absent), whether it meets the constraints
// and lies on its task's Pareto front, then every key of the sweep config flattened
// ("config.cache_params.span"; lists as JSON).
#include <string>

namespace kvlab {

struct Summary;

std::string summary_csv(const Summary& s);
// One CSV field, quoted when it holds a comma, quote, or line break.
std::string csv_field(const std::string& text);

}  // namespace kvlab
