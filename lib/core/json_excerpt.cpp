#include "core/json_excerpt.h"

#include <nlohmann/json.hpp>

namespace kvlab {

std::string json_excerpt(const nlohmann::json& v) {
  if (v.is_structured()) {
    for (const nlohmann::json& child : v)
      if (child.is_structured())
        return std::string(v.is_array() ? "a list of " : "an object of ") + std::to_string(v.size()) +
               (v.is_array() ? " item" : " key") + (v.size() == 1 ? "" : "s");
  }
  // ensure_ascii escapes newlines and keeps multi-byte characters whole when the text is cut.
  std::string text = v.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  constexpr size_t kMax = 80;
  if (text.size() > kMax) text = text.substr(0, kMax - 3) + "...";
  return text;
}

}  // namespace kvlab
