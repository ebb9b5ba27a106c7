#pragma once
// Byte-level BPE tokenization from a Hugging Face tokenizer.json (GPT-2 family: Llama-3,
// Qwen2/2.5/3), producing the same ids as the `tokenizers` library. Unsupported model,
// normalizer, pre-tokenizer, post-processor or decoder kinds are rejected at load, by name.
// truncation and padding in the file are ignored: kvlab never truncates or pads text.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvlab {

class Tokenizer {
 public:
  // `path` is a tokenizer.json or a directory holding one. tokenizer_config.json and
  // generation_config.json beside it, when present, supply eos_ids() and chat_template().
  static Tokenizer load(const std::string& path);

  // Added tokens written inline ("hi<|eot_id|>") become their ids. add_special applies the
  // file's post_processor (Llama-3 prepends <|begin_of_text|>; Qwen adds nothing).
  // Throws kvlab::Error when `text` is not valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;

  // Text of `ids`, special tokens included; bytes that do not form UTF-8 become U+FFFD.
  // Throws kvlab::Error for an id that names no token.
  std::string decode(const std::vector<int32_t>& ids) const;
  // The raw bytes of one token, possibly part of a UTF-8 sequence (see TokenStreamDecoder).
  const std::string& token_bytes(int32_t id) const;

  int32_t vocab_size() const;  // largest id + 1, added tokens included
  // The id of a token as spelled in tokenizer.json ("<|eot_id|>", "Ġhello"), if any.
  std::optional<int32_t> token_id(std::string_view token) const;
  std::optional<int32_t> bos_id() const;      // what add_special prepends, if anything
  const std::vector<int32_t>& eos_ids() const;  // tokens that end a reply; may be empty
  const std::string& chat_template() const;   // the Jinja source from tokenizer_config.json, or ""
  const std::string& path() const;            // the tokenizer.json that was loaded

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;  // immutable once loaded: copies share it, threads may too
};

// Turns generated ids into text as they arrive: push() returns what can be printed now, holding
// back a character whose bytes are split across tokens; all pushes plus finish() equal decode().
class TokenStreamDecoder {
 public:
  explicit TokenStreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t id);
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace kvlab
