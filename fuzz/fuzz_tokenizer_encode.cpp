// Arbitrary bytes as text for the real Llama-3.1 and Qwen3 tokenizers (third_party/tokenizers,
// from scripts/fetch_tokenizers.sh). Invalid UTF-8 (by an independent validator, Unicode 15
// table 3-7) must throw a bad-input Error; valid text must encode, its ids must be in the
// vocabulary, and with Llama-3.1 (no normalizer) decode(encode(x)) must give back x exactly.
#include <optional>

#include "fuzz_support.h"
#include "model/tokenizer.h"

namespace {

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, nothing truncated.
bool valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t b = s[i];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k < len; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

const kvlab::Tokenizer& tokenizer(const char* name) {
  static const kvlab::Tokenizer llama = kvlab::Tokenizer::load(kvlab::fuzz::tokenizer_dir() + "/llama3_1/tokenizer.json");
  static const kvlab::Tokenizer qwen = kvlab::Tokenizer::load(kvlab::fuzz::tokenizer_dir() + "/qwen3/tokenizer.json");
  return std::string(name) == "llama3_1" ? llama : qwen;
}

}  // namespace

KVLAB_FUZZ_TARGET(tokenizer_encode) {
  using namespace kvlab;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = valid_utf8(data, size);
  for (const char* name : {"llama3_1", "qwen3"}) {
    const Tokenizer& tok = tokenizer(name);
    std::optional<std::vector<int32_t>> ids;
    try {
      ids = tok.encode(text);
    } catch (const Error& e) {
      if (valid || e.code() != kExitBadInput)
        fuzz::finding(std::string(name) + ": encode threw for " + (valid ? "valid" : "invalid") + " UTF-8: " + e.what());
    }
    if (!valid && ids) fuzz::finding(std::string(name) + ": encode accepted invalid UTF-8");
    if (!ids) continue;
    for (int32_t id : *ids)
      if (id < 0 || id >= tok.vocab_size()) fuzz::finding(std::string(name) + ": id out of the vocabulary");
    std::string back;
    try {
      back = tok.decode(*ids);
    } catch (const std::exception& e) {
      fuzz::finding(std::string(name) + ": decode of encode's ids threw: " + e.what());
    }
    if (std::string(name) == "llama3_1" && back != text) fuzz::finding("llama3_1: decode(encode(x)) != x");
  }
}
