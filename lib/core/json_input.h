#pragma once
// Parsing JSON from a user's file. nlohmann's parse has two traps for a parser of user files:
// a number beyond double's range (1e999) throws out_of_range, not the parse_error a handler
// catches, and nothing bounds nesting, while copying, printing or comparing a value recurses
// once per level (a 300 KB file of brackets overflows the stack).
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kvlab {

// The parsed value, or Error (exit code 2) "<where>: malformed JSON: <reason>" for bad syntax,
// an out-of-range number or nesting deeper than `max_depth` levels.
nlohmann::json parse_json_input(std::string_view text, const std::string& where, int max_depth = 256);

}  // namespace kvlab
