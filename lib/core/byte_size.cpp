#include "core/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <utility>

namespace kvlab {

std::optional<double> parse_byte_size(const std::string& text) {
  size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) pos++;
  if (pos == 0) return std::nullopt;
  const std::string number = text.substr(0, pos);
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(value)) return std::nullopt;
  std::string unit = text.substr(pos);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  for (char& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},     {"B", 1},      {"K", 0x1p10},   {"KIB", 0x1p10}, {"KB", 1e3},   {"M", 0x1p20},   {"MIB", 0x1p20},
      {"MB", 1e6}, {"G", 0x1p30}, {"GIB", 0x1p30}, {"GB", 1e9},     {"T", 0x1p40}, {"TIB", 0x1p40}, {"TB", 1e12}};
  for (const auto& [name, factor] : kUnits)
    if (unit == name) return value * factor;
  return std::nullopt;
}

}  // namespace kvlab
