#pragma once
// A run's id: the first 12 hex digits of the SHA-256 of its resolved config in canonical JSON
// (compact, object keys sorted at every level), so the same settings get the same id whatever
// order a sweep file wrote them in, and a sweep run twice names its runs the same way.
#include <nlohmann/json.hpp>
#include <string>

namespace kvlab {

constexpr size_t kRunIdLength = 12;

std::string canonical_json(const nlohmann::json& value);
std::string run_id(const nlohmann::json& config);
// Whether `text` has the form of a run id (kRunIdLength lowercase hex digits).
bool is_run_id(const std::string& text);

}  // namespace kvlab
