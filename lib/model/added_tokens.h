#pragma once
// Added tokens (specials such as <|eot_id|>, and tokens added after training such as <think>)
// are cut out of the text before normalization and BPE. Matching follows Hugging Face's
// AddedVocabulary: leftmost-longest, non-overlapping, then the single_word / lstrip / rstrip rules.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvlab {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool single_word = false;  // only matches when not inside a word
  bool lstrip = false;       // swallows the whitespace before it
  bool rstrip = false;       // swallows the whitespace after it
  bool normalized = true;    // matched in normalized text rather than raw text
};

// A stretch of a split text: ordinary text (token_id < 0) or one added token.
struct TextPiece {
  std::string_view text;
  int32_t token_id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the string that finds `tokens[i]` (its content, or its normalized content).
  AddedTokenMatcher(std::vector<AddedToken> tokens, const std::vector<std::string>& patterns);

  bool empty() const { return tokens_.empty(); }
  // Appends the pieces of `text`, in order; ordinary pieces are never empty.
  void split(std::string_view text, std::vector<TextPiece>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node
    int32_t token = -1;                                 // index into tokens_ when a pattern ends here
  };
  int32_t child(int32_t node, uint8_t byte) const;
  // The longest pattern starting at text[pos]: its token index and end, or -1.
  int32_t longest_match(std::string_view text, size_t pos, size_t& end) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  bool starts_pattern_[256] = {};
};

}  // namespace kvlab
