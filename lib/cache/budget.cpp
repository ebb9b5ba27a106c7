#include "cache/budget.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace kvlab {

int resolve_budget(const std::string& text, int context_tokens, size_t kv_bytes_per_token) {
  const std::string where = "--budget \"" + text + "\"";
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(value) || value <= 0)
    fail(where + ": give tokens (2048), a fraction of the context (0.25) or bytes (512MiB)");
  const std::string unit(end);
  double tokens = 0;
  if (unit.empty()) {
    tokens = value < 1 ? value * context_tokens : value;
    if (value >= 1 && value != std::floor(value)) fail(where + ": a token budget must be a whole number");
  } else {
    double scale = 0;
    if (unit == "B") scale = 1;
    if (unit == "KiB") scale = 1024.0;
    if (unit == "MiB") scale = 1024.0 * 1024;
    if (unit == "GiB") scale = 1024.0 * 1024 * 1024;
    if (scale == 0) fail(where + ": unknown unit \"" + unit + "\" (B, KiB, MiB, GiB)");
    tokens = value * scale / double(kv_bytes_per_token);
  }
  if (tokens < 1) fail(where + " is less than one token");
  if (tokens > 1 << 30) fail(where + " is too large");
  return int(std::floor(tokens));
}

}  // namespace kvlab
