#include "model/added_tokens.h"

#include <utf8proc.h>

#include "model/byte_level.h"

namespace kvlab {
namespace {

// Rust regex's \s, which HF uses for lstrip/rstrip: the Unicode White_Space property.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Rust regex's \w, which HF uses for single_word: Alphabetic, marks, decimal digits, connector
// punctuation and the joiners. Alphabetic's few symbols are the circled and squared letters.
bool is_word_char(char32_t c) {
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) ||
             (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
             (c >= 0x1F170 && c <= 0x1F189);
  }
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     const std::vector<std::string>& patterns)
    : tokens_(std::move(tokens)), nodes_(1) {
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& pattern = patterns[t];
    if (pattern.empty()) continue;
    starts_pattern_[uint8_t(pattern[0])] = true;
    int32_t node = 0;
    for (char ch : pattern) {
      int32_t next = child(node, uint8_t(ch));
      if (next < 0) {
        next = int32_t(nodes_.size());
        nodes_[node].children.emplace_back(uint8_t(ch), next);
        nodes_.emplace_back();
      }
      node = next;
    }
    nodes_[node].token = int32_t(t);
  }
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t byte) const {
  for (const auto& [b, next] : nodes_[node].children)
    if (b == byte) return next;
  return -1;
}

int32_t AddedTokenMatcher::longest_match(std::string_view text, size_t pos, size_t& end) const {
  int32_t best = -1, node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = child(node, uint8_t(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) {
      best = nodes_[node].token;
      end = i + 1;
    }
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextPiece>& out) const {
  size_t emitted = 0;  // text before this offset is already in `out`
  size_t pos = 0;
  while (pos < text.size()) {
    size_t stop = 0;
    int32_t t = starts_pattern_[uint8_t(text[pos])] ? longest_match(text, pos, stop) : -1;
    if (t < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[t];
    size_t start = pos;
    pos = stop;  // matches never overlap, even when a match is then discarded
    if (token.single_word) {
      size_t before_start = 0, after = stop;
      bool word_before = start > 0 && is_word_char(previous_code_point(text, start, before_start));
      bool word_after = stop < text.size() && is_word_char(next_code_point(text, after));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t begin = start;
      while (begin > emitted) {
        size_t prev = 0;
        if (!is_white_space(previous_code_point(text, begin, prev))) break;
        begin = prev;
      }
      start = begin;
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t next = stop;
        if (!is_white_space(next_code_point(text, next))) break;
        stop = next;
      }
      pos = stop;
    }
    if (emitted < start) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({text.substr(start, stop - start), token.id});
    emitted = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

}  // namespace kvlab
