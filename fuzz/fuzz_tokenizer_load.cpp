// Arbitrary bytes as tokenizer.json. Tokenizer::load accepts them or throws a bad-input Error;
// a tokenizer it accepts must encode and decode a fixed text (ASCII, accents, CJK, an emoji and
// an inline special token) without anything but a bad-input Error.
#include <filesystem>

#include "fuzz_support.h"
#include "model/tokenizer.h"

KVLAB_FUZZ_TARGET(tokenizer_load) {
  using namespace kvlab;
  static const std::string path = [] {
    std::string d = fuzz::scratch_dir() + "/tokenizer_load";
    std::filesystem::create_directories(d);
    return d + "/tokenizer.json";
  }();
  fuzz::write_file(path, data, size);
  fuzz::expect_only_bad_input([&] {
    const Tokenizer tok = Tokenizer::load(path);
    const std::vector<int32_t> ids =
        tok.encode("Hello, world! caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 <|eot_id|>  12345\n\tx", true);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) fuzz::finding("encode produced id " + std::to_string(id) + " outside the vocabulary");
    tok.decode(ids);
    tok.token_id("<|eot_id|>");
  });
}
