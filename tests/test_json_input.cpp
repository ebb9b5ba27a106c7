// Parsing JSON from users' files: every failure is a bad-input Error, including the two that
// nlohmann's parse lets through (out-of-range numbers, unbounded nesting).
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/json_excerpt.h"
#include "core/json_input.h"

namespace kvlab {
namespace {

std::string error_of(const std::string& text, int max_depth = 256) {
  try {
    parse_json_input(text, "f.json", max_depth);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitBadInput);
    return e.what();
  }
  return "";
}

TEST(JsonInput, ParsesValidJson) {
  EXPECT_EQ(parse_json_input(R"({"a": [1, 2.5, "x"]})", "f.json"), nlohmann::json::parse(R"({"a": [1, 2.5, "x"]})"));
  const std::string deep_ok = std::string(256, '[') + std::string(256, ']');
  EXPECT_EQ(error_of(deep_ok), "");
}

TEST(JsonInput, EveryFailureIsBadInput) {
  EXPECT_EQ(error_of("{\"a\": 1e999}").rfind("f.json: malformed JSON: number overflow", 0), 0u) << error_of("{\"a\": 1e999}");
  EXPECT_NE(error_of("{\"a\": ").find("f.json: malformed JSON: parse error at line 1, column 7"), std::string::npos);
  EXPECT_NE(error_of("{} x").find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of("\"\xff\"").find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of("").find("malformed JSON"), std::string::npos);
}

TEST(JsonInput, DeepNestingIsRefusedWithoutRecursion) {
  const std::string deep = "{\"a\": " + std::string(300000, '[') + std::string(300000, ']') + "}";
  EXPECT_EQ(error_of(deep), "f.json: malformed JSON: nested deeper than 256 levels");
  EXPECT_EQ(error_of("[[[1]]]", 2), "f.json: malformed JSON: nested deeper than 2 levels");
}

TEST(JsonExcerpt, ShortOneLineAndNeverRecursive) {
  EXPECT_EQ(json_excerpt(nlohmann::json::parse("[4096, 128]")), "[4096,128]");
  EXPECT_EQ(json_excerpt("gelu\nx"), "\"gelu\\nx\"");
  EXPECT_EQ(json_excerpt(nlohmann::json::parse("[[1], 2, 3]")), "a list of 3 items");
  EXPECT_EQ(json_excerpt(nlohmann::json::parse(R"({"a": {"b": 1}})")), "an object of 1 key");
  EXPECT_EQ(json_excerpt(std::string(500, 'x')).size(), 80u);
  EXPECT_EQ(json_excerpt("\xc3\xa9"), "\"\\u00e9\"");
  // 300,000 levels: dump() would overflow the stack.
  const nlohmann::json deep = nlohmann::json::parse(std::string(300000, '[') + std::string(300000, ']'));
  EXPECT_EQ(json_excerpt(deep), "a list of 1 item");
}

}  // namespace
}  // namespace kvlab
