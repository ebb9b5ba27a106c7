#include "core/json_input.h"

#include "core/error.h"

namespace kvlab {

nlohmann::json parse_json_input(std::string_view text, const std::string& where, int max_depth) {
  using nlohmann::json;
  bool too_deep = false;
  // Returning false drops a value before it is built, so a deep one is never held whole.
  auto limit = [&](int depth, json::parse_event_t, json&) {
    if (depth > max_depth) too_deep = true;
    return !too_deep;
  };
  json value;
  try {
    value = json::parse(text.begin(), text.end(), limit);
  } catch (const json::exception& e) {
    std::string what = e.what();
    const size_t start = what.find("] ");  // drop "[json.exception.parse_error.101] "
    fail(where + ": malformed JSON: " + (start == std::string::npos ? what : what.substr(start + 2)));
  }
  if (too_deep) fail(where + ": malformed JSON: nested deeper than " + std::to_string(max_depth) + " levels");
  return value;
}

}  // namespace kvlab
