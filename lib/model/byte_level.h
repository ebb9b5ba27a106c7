#pragma once
// Bytes and text for byte-level BPE: the GPT-2 alphabet that spells every byte as one printable
// character in tokenizer.json ('Ġ' is the space), and the UTF-8 rules used to reject bad input
// and to turn decoded bytes back into text exactly as Hugging Face does.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvlab {

// The character that spells byte b in a byte-level vocabulary.
char32_t byte_level_char(uint8_t b);
// The byte a vocabulary character stands for; nullopt outside the 256-character alphabet.
std::optional<uint8_t> byte_level_byte(char32_t c);
// A vocabulary token's raw bytes, as HF's ByteLevel decoder computes them: a token with any
// character outside the alphabet (an added token such as "<|eot_id|> x") keeps its own UTF-8.
// `in_alphabet`, when given, tells which of the two happened.
std::string byte_level_decode(std::string_view token, bool* in_alphabet = nullptr);

// One step of a UTF-8 scan at s[i]: a valid sequence of `length` bytes, or an invalid
// "maximal subpart" of `length` bytes that lossy decoding replaces by one U+FFFD.
// `truncated` marks an invalid subpart that is only invalid because the input ended.
struct Utf8Step {
  uint8_t length;
  bool valid;
  bool truncated;
};
Utf8Step utf8_step(std::string_view s, size_t i);

// Byte offset of the first invalid UTF-8 sequence, or nullopt when `s` is valid.
std::optional<size_t> find_invalid_utf8(std::string_view s);
// Rust's String::from_utf8_lossy, which HF's decoder applies to the joined bytes.
std::string utf8_lossy(std::string_view bytes);
// Length of the longest prefix that does not end inside a valid but unfinished sequence; what a
// streaming decoder can print now without changing what decoding everything at once would give.
size_t utf8_complete_prefix(std::string_view bytes);

// Reads the code point at s[i] of valid UTF-8 and moves i past it.
char32_t next_code_point(std::string_view s, size_t& i);
// The code point that ends just before s[end] of valid UTF-8, and where it starts.
char32_t previous_code_point(std::string_view s, size_t end, size_t& start);
void append_utf8(std::string& out, char32_t c);

}  // namespace kvlab
