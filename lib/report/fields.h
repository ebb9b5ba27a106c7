#pragma once
// The numbers kvlab-report compares runs by, by name: what --constraint and --objective take,
// the columns of the CSV, and how each is printed.
#include <string>
#include <vector>

namespace kvlab {

struct Field {
  enum Unit { Ratio, Bytes, Seconds, PerSecond, Tokens, Count, Perplexity, Plain };
  std::string name;
  std::string title;        // a column heading
  std::string description;  // for docs and --help
  Unit unit = Plain;
  int better = 0;  // +1 higher is better, -1 lower is better, 0 neither
};

// In CSV column order. "quality" is the task's own metric (accuracy, score or ppl); its direction
// is the task's (RunRow::quality_higher_is_better).
const std::vector<Field>& report_fields();
// Error listing the names when `name` is none of them.
const Field& find_field(const std::string& name);
// A value as people read it: bytes as "24.00 KiB", ratios to 3 decimals, perplexity to 2, speeds to 1.
std::string format_value(const Field& f, double value);

}  // namespace kvlab
