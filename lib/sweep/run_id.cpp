#include "sweep/run_id.h"

#include "core/sha256.h"

namespace kvlab {

// nlohmann::json stores objects in a std::map, so dump() already sorts keys; numbers print in
// their shortest round-trip form.
std::string canonical_json(const nlohmann::json& value) { return value.dump(); }

std::string run_id(const nlohmann::json& config) { return sha256_hex(canonical_json(config)).substr(0, kRunIdLength); }

bool is_run_id(const std::string& text) {
  if (text.size() != kRunIdLength) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace kvlab
