#include "model/byte_level.h"

#include <array>
#include <cstring>

namespace kvlab {
namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes spell themselves, the other 68 bytes are
// moved to U+0100 and up, in byte order.
struct Alphabet {
  std::array<char32_t, 256> char_of_byte{};
  std::array<int16_t, 512> byte_of_char{};  // every alphabet character is below U+0200

  Alphabet() {
    byte_of_char.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char32_t c = printable ? char32_t(b) : next++;
      char_of_byte[b] = c;
      byte_of_char[c] = int16_t(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

char32_t byte_level_char(uint8_t b) { return alphabet().char_of_byte[b]; }

std::optional<uint8_t> byte_level_byte(char32_t c) {
  if (c >= 512 || alphabet().byte_of_char[c] < 0) return std::nullopt;
  return uint8_t(alphabet().byte_of_char[c]);
}

std::string byte_level_decode(std::string_view token, bool* in_alphabet) {
  std::string bytes;
  bytes.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    Utf8Step step = utf8_step(token, i);
    std::optional<uint8_t> b;
    if (step.valid) b = byte_level_byte(next_code_point(token, i));
    if (!b) {
      if (in_alphabet) *in_alphabet = false;
      return std::string(token);
    }
    bytes.push_back(char(*b));
  }
  if (in_alphabet) *in_alphabet = true;
  return bytes;
}

Utf8Step utf8_step(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return uint8_t(s[i + k]); };
  uint8_t b0 = byte(0);
  if (b0 < 0x80) return {1, true, false};
  int width;
  uint8_t lo = 0x80, hi = 0xBF;  // the second byte's range excludes overlongs and surrogates
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    width = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    width = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    width = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {1, false, false};
  }
  size_t available = s.size() - i;
  for (int k = 1; k < width; ++k) {
    if (size_t(k) >= available) return {uint8_t(k), false, true};
    uint8_t b = byte(k);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return {uint8_t(k), false, false};
  }
  return {uint8_t(width), true, false};
}

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    // ASCII runs are the common case; skip them eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    Utf8Step step = utf8_step(s, i);
    if (!step.valid) return i;
    i += step.length;
  }
  return std::nullopt;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    Utf8Step step = utf8_step(bytes, i);
    if (step.valid)
      out.append(bytes.data() + i, step.length);
    else
      out.append("\xEF\xBF\xBD");
    i += step.length;
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view bytes) {
  // Only the last three bytes can hold an unfinished sequence.
  size_t from = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t i = from; i < bytes.size(); ++i) {
    uint8_t b = uint8_t(bytes[i]);
    if (b < 0xC2 || b > 0xF4) continue;  // not a lead byte
    Utf8Step step = utf8_step(bytes, i);
    if (step.truncated) return i;
  }
  return bytes.size();
}

char32_t next_code_point(std::string_view s, size_t& i) {
  uint8_t b0 = uint8_t(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int extra = b0 >= 0xF0 ? 3 : b0 >= 0xE0 ? 2 : 1;
  char32_t c = b0 & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) c = (c << 6) | (uint8_t(s[i + k]) & 0x3F);
  i += extra + 1;
  return c;
}

char32_t previous_code_point(std::string_view s, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return next_code_point(s, i);
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

}  // namespace kvlab
