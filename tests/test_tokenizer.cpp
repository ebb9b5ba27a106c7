// The byte-level BPE tokenizer: hand-checked cases on the real Llama-3.1 and Qwen3 files and on
// tiny made-up tokenizer.json files, the Hugging Face goldens when they have been generated, and
// kvlab-tokenize as a user runs it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "model/byte_level.h"
#include "model/tokenizer.h"
#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Ids = std::vector<int32_t>;

std::string real_tokenizer_dir(const std::string& name) { return testing::tokenizer_dir() + "/" + name; }

bool have_tokenizer(const std::string& name) {
  return fs::exists(real_tokenizer_dir(name) + "/tokenizer.json");
}

// Loading takes a few hundred milliseconds, so each real tokenizer is loaded once per binary.
const Tokenizer& real_tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end()) it = loaded.emplace(name, Tokenizer::load(real_tokenizer_dir(name))).first;
  return it->second;
}

#define REQUIRE_TOKENIZER(name)                                                             \
  if (!have_tokenizer(name))                                                                \
  GTEST_SKIP() << "no " << real_tokenizer_dir(name)                                         \
               << "/tokenizer.json; scripts/fetch_tokenizers.sh fetches it"

std::string spelling(std::string_view bytes) {  // raw bytes as tokenizer.json spells them
  std::string s;
  for (char b : bytes) append_utf8(s, byte_level_char(uint8_t(b)));
  return s;
}

// A byte-level BPE tokenizer.json with the 256 byte tokens (id = byte), the merges given as
// "a b" pairs of raw text (each result becomes the next id), and the given added tokens.
json tiny_tokenizer(const std::vector<std::pair<std::string, std::string>>& merges,
                    const json& added_tokens = json::array(), bool ignore_merges = false,
                    const std::vector<std::string>& extra_vocab = {}) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[spelling(std::string(1, char(b)))] = b;
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    merge_list.push_back(spelling(a) + " " + spelling(b));
    int id = int(vocab.size());
    if (!vocab.contains(spelling(a + b))) vocab[spelling(a + b)] = id;
  }
  for (const std::string& token : extra_vocab) {
    int id = int(vocab.size());
    vocab[spelling(token)] = id;
  }
  json added = added_tokens;
  int next_id = int(vocab.size());
  for (json& a : added) {
    a["id"] = next_id++;
    for (const char* flag : {"single_word", "lstrip", "rstrip", "normalized", "special"})
      if (!a.contains(flag)) a[flag] = false;
  }
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", R"( ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"ignore_merges", ignore_merges}, {"vocab", vocab}, {"merges", merge_list}}},
  };
}

std::string write_tokenizer(const json& j) {
  std::string dir = testing::temp_dir();
  testing::write_file(dir + "/tokenizer.json", j.dump());
  return dir;
}

Tokenizer load_tiny(const json& j) { return Tokenizer::load(write_tokenizer(j)); }

std::string load_error(const std::string& path) {
  try {
    Tokenizer::load(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitBadInput);
    return e.what();
  }
  ADD_FAILURE() << "loading " << path << " did not throw";
  return "";
}

// ---------------------------------------------------------------------------------------------
// The real files, checked by hand.

TEST(Tokenizer, Llama3VocabularyAndSpecials) {
  REQUIRE_TOKENIZER("llama3_1");
  const Tokenizer& t = real_tokenizer("llama3_1");
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_EQ(t.token_id("<|begin_of_text|>"), 128000);
  EXPECT_EQ(t.token_id("<|eot_id|>"), 128009);
  EXPECT_EQ(t.token_id("<|reserved_special_token_250|>"), 128255);
  EXPECT_EQ(t.token_id("Hello"), 9906);
  EXPECT_EQ(t.token_id("Ġworld"), 1917);  // tokenizer.json spells the space as Ġ
  EXPECT_EQ(t.token_id("no such token"), std::nullopt);
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_ids(), Ids{128009});  // tokenizer_config.json's eos_token
  EXPECT_EQ(t.encode("Hello world"), (Ids{9906, 1917}));
  EXPECT_EQ(t.encode("Hello world", /*add_special=*/true), (Ids{128000, 9906, 1917}));
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_EQ(t.encode("", true), Ids{128000});
}

TEST(Tokenizer, Qwen3VocabularyAndSpecials) {
  REQUIRE_TOKENIZER("qwen3");
  const Tokenizer& t = real_tokenizer("qwen3");
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.token_id("<|endoftext|>"), 151643);
  EXPECT_EQ(t.token_id("<|im_start|>"), 151644);
  EXPECT_EQ(t.token_id("<|im_end|>"), 151645);
  EXPECT_EQ(t.token_id("</think>"), 151668);
  EXPECT_EQ(t.bos_id(), std::nullopt);
  EXPECT_EQ(t.eos_ids(), Ids{151645});
  EXPECT_EQ(t.encode("Hello world"), (Ids{9707, 1879}));
  EXPECT_EQ(t.encode("Hello world", /*add_special=*/true), (Ids{9707, 1879}));  // Qwen adds nothing
}

TEST(Tokenizer, AddedTokensAreFoundInline) {
  REQUIRE_TOKENIZER("llama3_1");
  REQUIRE_TOKENIZER("qwen3");
  const Tokenizer& llama = real_tokenizer("llama3_1");
  Ids hello = llama.encode("hello"), world = llama.encode("world");
  Ids expected = hello;
  expected.push_back(128009);
  expected.insert(expected.end(), world.begin(), world.end());
  EXPECT_EQ(llama.encode("hello<|eot_id|>world"), expected);
  EXPECT_EQ(llama.encode("<|eot_id|><|eot_id|>"), (Ids{128009, 128009}));
  // Not Llama's token: plain text, so no added-token id appears.
  for (int32_t id : llama.encode("<|im_start|>user")) EXPECT_LT(id, 128000);
  // An unfinished special is text too.
  for (int32_t id : llama.encode("<|eot_id|")) EXPECT_LT(id, 128000);

  const Tokenizer& qwen = real_tokenizer("qwen3");
  Ids chat = qwen.encode("<|im_start|>user\nhi<|im_end|>");
  ASSERT_GE(chat.size(), 3u);
  EXPECT_EQ(chat.front(), 151644);
  EXPECT_EQ(chat.back(), 151645);
  EXPECT_EQ(qwen.encode("<think>"), Ids{151667});  // a non-special added token is matched too
}

TEST(Tokenizer, ContractionsAreCaseInsensitive) {
  REQUIRE_TOKENIZER("llama3_1");
  const Tokenizer& t = real_tokenizer("llama3_1");
  // The pre-tokenizer's (?i:'s|'t|...) splits "'T" off "DON" just as "'t" off "don".
  Ids upper = t.encode("DON'T"), lower = t.encode("don't");
  ASSERT_EQ(upper.size(), 2u);
  ASSERT_EQ(lower.size(), 2u);
  EXPECT_EQ(t.decode({upper[1]}), "'T");
  EXPECT_EQ(t.decode({lower[1]}), "'t");
}

TEST(Tokenizer, EveryByteGoesThroughTheByteAlphabet) {
  REQUIRE_TOKENIZER("llama3_1");
  const Tokenizer& t = real_tokenizer("llama3_1");
  for (int b = 0; b < 128; ++b) {  // each ASCII byte alone is its own token
    std::string text(1, char(b));
    EXPECT_EQ(t.encode(text), Ids{*t.token_id(spelling(text))}) << "byte " << b;
  }
  // Rare characters fall apart into byte tokens that decode back to the same bytes.
  for (const std::string& text : std::vector<std::string>{"\U0001D518", "\u180E", "\xF0\x9F\xA4\xB7\xF0\x9F\x8F\xBD\xE2\x80\x8D\xE2\x99\x80\xEF\xB8\x8F",
                           "\U0010FFFD", std::string("a\0b", 3)}) {
    Ids ids = t.encode(text);
    std::string bytes;
    for (int32_t id : ids) bytes += t.token_bytes(id);
    EXPECT_EQ(bytes, text);
    EXPECT_EQ(t.decode(ids), text);
  }
}

TEST(Tokenizer, QwenNormalizesToNfcAndLlamaDoesNot) {
  REQUIRE_TOKENIZER("llama3_1");
  REQUIRE_TOKENIZER("qwen3");
  const std::string decomposed = "Cafe\u0301", composed = "Caf\u00e9";
  const Tokenizer& qwen = real_tokenizer("qwen3");
  EXPECT_EQ(qwen.encode(decomposed), qwen.encode(composed));
  EXPECT_EQ(qwen.decode(qwen.encode(decomposed)), composed);
  const Tokenizer& llama = real_tokenizer("llama3_1");
  EXPECT_NE(llama.encode(decomposed), llama.encode(composed));
  EXPECT_EQ(llama.decode(llama.encode(decomposed)), decomposed);
}

TEST(Tokenizer, InvalidUtf8IsRejectedWithItsOffset) {
  REQUIRE_TOKENIZER("llama3_1");
  const Tokenizer& t = real_tokenizer("llama3_1");
  const std::vector<std::pair<std::string, size_t>> cases = {
      {"ab\xff" "cd", 2},           // a byte that never occurs in UTF-8
      {"abc\xe3\x81", 3},           // cut short by the end
      {"x\xc0\xaf", 1},             // overlong '/'
      {"xy\xed\xa0\x80", 2},        // a surrogate
      {"\xf4\x90\x80\x80", 0},      // past U+10FFFF
      {"ok \xe2\x82" "x", 3},       // continuation missing
      {"<|eot_id|>\x80", 10},       // after an added token
  };
  for (const auto& [text, offset] : cases) {
    try {
      t.encode(text);
      ADD_FAILURE() << "no error for byte " << offset;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitBadInput);
      EXPECT_EQ(std::string(e.what()), "input is not valid UTF-8 at byte " + std::to_string(offset));
    }
  }
}

TEST(Tokenizer, DecodeKeepsSpecialsAndReplacesBrokenUtf8AsHuggingFaceDoes) {
  REQUIRE_TOKENIZER("llama3_1");
  const Tokenizer& t = real_tokenizer("llama3_1");
  EXPECT_EQ(t.decode({128000, 9906, 1917, 128009}), "<|begin_of_text|>Hello world<|eot_id|>");
  Ids ja = t.encode("日本");
  std::string bytes;
  for (int32_t id : ja) bytes += t.token_bytes(id);
  EXPECT_EQ(bytes, "日本");
  // The lone lead byte of a 3-byte character: one U+FFFD, as Rust's from_utf8_lossy gives.
  int32_t e3 = *t.token_id(spelling("\xe3"));
  EXPECT_EQ(t.decode({e3}), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({e3, *t.token_id("a")}), "\xEF\xBF\xBD" "a");
  int32_t e3_81 = *t.token_id(spelling("\xe3\x81"));  // a token that is two bytes of a character
  EXPECT_EQ(t.decode({e3_81, *t.token_id(spelling("\x82"))}), "\xE3\x81\x82");  // "あ"
  EXPECT_EQ(t.decode({e3_81}), "\xEF\xBF\xBD");  // one replacement for the whole unfinished prefix
  EXPECT_EQ(t.decode({*t.token_id(spelling("\xff"))}), "\xEF\xBF\xBD");
  EXPECT_THROW(t.decode({128256}), Error);
  EXPECT_THROW(t.decode({-1}), Error);
}

TEST(Tokenizer, StreamDecodingMatchesDecodingAtOnce) {
  REQUIRE_TOKENIZER("qwen3");
  const Tokenizer& t = real_tokenizer("qwen3");
  for (std::string text : {"日本語のテキスト 🤷🏽‍♀️ done", "<|im_start|>user\n한국어<|im_end|>", "plain ascii"}) {
    Ids ids = t.encode(text);
    TokenStreamDecoder stream(t);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    EXPECT_EQ(streamed, t.decode(ids));
    EXPECT_EQ(streamed, text);
  }
  // A token sequence that ends inside a character: the partial character is held back, then
  // replaced at finish() just as decode() replaces it.
  TokenStreamDecoder stream(t);
  int32_t e3_81 = *t.token_id(spelling("\xe3\x81"));
  EXPECT_EQ(stream.push(*t.token_id("a")), "a");
  EXPECT_EQ(stream.push(e3_81), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");
}

TEST(Tokenizer, EncodingIsTheSameAcrossThreadsAndRepeats) {
  REQUIRE_TOKENIZER("llama3_1");
  REQUIRE_TOKENIZER("qwen3");
  std::string text = testing::read_file(real_tokenizer_dir("qwen3") + "/tokenizer_config.json");
  for (const char* name : {"qwen3", "llama3_1"}) {
    const Tokenizer& t = real_tokenizer(name);
    Ids first = t.encode(text);
    EXPECT_EQ(t.encode(text), first) << name << ": the piece cache changed the result";
    std::vector<Ids> results(4);
    std::vector<std::thread> threads;
    for (auto& r : results) threads.emplace_back([&] { r = t.encode(text); });
    for (auto& th : threads) th.join();
    for (const Ids& r : results) EXPECT_EQ(r, first) << name;
  }
  // Alternating tokenizers on one thread must not mix their cached pieces.
  EXPECT_EQ(real_tokenizer("qwen3").encode("Hello world"), (Ids{9707, 1879}));
  EXPECT_EQ(real_tokenizer("llama3_1").encode("Hello world"), (Ids{9906, 1917}));
}

// ---------------------------------------------------------------------------------------------
// Tiny tokenizers that isolate one rule each.

TEST(TinyTokenizer, MergesApplyByRankThenLeftmost) {
  Tokenizer b_c_first = load_tiny(tiny_tokenizer({{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(b_c_first.encode("abc"), (Ids{'a', 256}));  // "bc" outranks "ab"
  Tokenizer a_b_first = load_tiny(tiny_tokenizer({{"a", "b"}, {"b", "c"}}));
  EXPECT_EQ(a_b_first.encode("abc"), (Ids{256, 'c'}));
  Tokenizer aa = load_tiny(tiny_tokenizer({{"a", "a"}}));
  EXPECT_EQ(aa.encode("aaa"), (Ids{256, 'a'}));  // equal ranks: the leftmost pair first
  EXPECT_EQ(aa.encode("aaaa"), (Ids{256, 256}));
  Tokenizer chain = load_tiny(tiny_tokenizer({{"a", "b"}, {"ab", "c"}, {"abc", "d"}}));
  EXPECT_EQ(chain.encode("abcd abc"), (Ids{258, ' ', 257}));
}

TEST(TinyTokenizer, IgnoreMergesUsesAWholeVocabularyWord) {
  // "abc" is in the vocabulary, but no merge reaches it from "ab" + "c".
  auto make = [](bool ignore_merges) {
    return load_tiny(tiny_tokenizer({{"a", "b"}}, json::array(), ignore_merges, {"abc"}));
  };
  EXPECT_EQ(make(false).encode("abc"), (Ids{256, 'c'}));
  EXPECT_EQ(make(true).encode("abc"), Ids{257});
  EXPECT_EQ(make(true).encode("abcd"), (Ids{256, 'c', 'd'}));  // "abcd" is not a token: merges as usual
}

TEST(TinyTokenizer, AddedTokensMatchLeftmostLongest) {
  json added = {{{"content", "<a>"}}, {{"content", "<a><b>"}}, {{"content", "b>"}}};
  Tokenizer t = load_tiny(tiny_tokenizer({}, added));
  const int32_t a = 256, ab = 257, b = 258;
  EXPECT_EQ(t.encode("<a><b>"), Ids{ab});
  EXPECT_EQ(t.encode("<a><c>"), (Ids{a, '<', 'c', '>'}));
  EXPECT_EQ(t.encode("x<a>b>"), (Ids{'x', a, b}));
  EXPECT_EQ(t.decode({ab, a}), "<a><b><a>");
}

TEST(TinyTokenizer, AddedTokenStripAndSingleWordFlags) {
  json added = {{{"content", "<l>"}, {"lstrip", true}},
                {{"content", "<r>"}, {"rstrip", true}},
                {{"content", "cat"}, {"single_word", true}}};
  Tokenizer t = load_tiny(tiny_tokenizer({}, added));
  const int32_t l = 256, r = 257, cat = 258;
  EXPECT_EQ(t.encode("x \t<l>y"), (Ids{'x', l, 'y'}));     // the spaces before <l> are swallowed
  EXPECT_EQ(t.encode("x<r>\u3000 y"), (Ids{'x', r, 'y'}));  // Unicode spaces too
  EXPECT_EQ(t.encode("a cat!"), (Ids{'a', ' ', cat, '!'}));
  EXPECT_EQ(t.encode("concat"), (Ids{'c', 'o', 'n', 'c', 'a', 't'}));  // inside a word: not the token
  EXPECT_EQ(t.encode("cats"), (Ids{'c', 'a', 't', 's'}));
  EXPECT_EQ(t.encode("caté"), (Ids{'c', 'a', 't', 0xC3, 0xA9}));  // é is a word character
}

TEST(TinyTokenizer, NormalizedAddedTokensMatchAfterNormalization) {
  json j = tiny_tokenizer({}, {{{"content", "\u00e9t\u00e9"}, {"normalized", true}}});
  j["normalizer"] = {{"type", "NFC"}};
  Tokenizer t = load_tiny(j);
  EXPECT_EQ(t.encode("e\u0301te\u0301!"), (Ids{256, '!'}));
  // As in HF, an added token goes through the ByteLevel decoder too, and "é" is that
  // alphabet's spelling of the lone byte 0xE9.
  EXPECT_EQ(t.decode({256}), "\uFFFDt\uFFFD");
}

TEST(TinyTokenizer, PostProcessorTemplateAddsSpecialsOnlyWhenAsked) {
  json j = tiny_tokenizer({}, {{{"content", "<s>"}, {"special", true}}, {{"content", "</s>"}, {"special", true}}});
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
      {"pair", json::array()},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {256}}, {"tokens", {"<s>"}}}},
                          {"</s>", {{"id", "</s>"}, {"ids", {257}}, {"tokens", {"</s>"}}}}}}};
  Tokenizer t = load_tiny(j);
  EXPECT_EQ(t.encode("a"), Ids{'a'});
  EXPECT_EQ(t.encode("a", true), (Ids{256, 'a', 257}));
  EXPECT_EQ(t.bos_id(), 256);
}

TEST(TinyTokenizer, ConfigFilesBesideTheTokenizerGiveEosIds) {
  json j = tiny_tokenizer({}, {{{"content", "<end>"}, {"special", true}}, {{"content", "<eom>"}, {"special", true}}});
  std::string dir = write_tokenizer(j);
  testing::write_file(dir + "/tokenizer_config.json", R"({"eos_token": {"content": "<end>"}, "chat_template": "x"})");
  testing::write_file(dir + "/generation_config.json", R"({"eos_token_id": [256, 257]})");
  Tokenizer t = Tokenizer::load(dir + "/tokenizer.json");
  EXPECT_EQ(t.eos_ids(), (Ids{256, 257}));
  EXPECT_EQ(t.chat_template(), "x");
}

// ---------------------------------------------------------------------------------------------
// Files kvlab cannot use: one clear error naming the file and what is wrong.

TEST(TokenizerFile, UnsupportedOrBrokenFilesNameTheFileAndField) {
  auto expect_error = [](const json& j, const std::string& must_mention) {
    std::string dir = write_tokenizer(j);
    std::string message = load_error(dir);
    EXPECT_NE(message.find(dir + "/tokenizer.json"), std::string::npos) << message;
    EXPECT_NE(message.find(must_mention), std::string::npos) << message;
  };
  json unigram = tiny_tokenizer({});
  unigram["model"] = {{"type", "Unigram"}, {"unk_id", 0}, {"vocab", json::array()}};
  expect_error(unigram, "Unigram");
  json wordpiece = tiny_tokenizer({});
  wordpiece["model"]["type"] = "WordPiece";
  expect_error(wordpiece, "WordPiece");
  json no_vocab = tiny_tokenizer({});
  no_vocab["model"].erase("vocab");
  expect_error(no_vocab, "model.vocab");
  json lowercase = tiny_tokenizer({});
  lowercase["normalizer"] = {{"type", "Lowercase"}};
  expect_error(lowercase, "Lowercase");
  json metaspace = tiny_tokenizer({});
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
  expect_error(metaspace, "Metaspace");
  json merged = tiny_tokenizer({});
  merged["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithPrevious";
  expect_error(merged, "MergedWithPrevious");
  json wordpiece_decoder = tiny_tokenizer({});
  wordpiece_decoder["decoder"] = {{"type", "WordPiece"}};
  expect_error(wordpiece_decoder, "decoder");
  json bad_merge = tiny_tokenizer({});
  bad_merge["model"]["merges"] = {"a q"};
  expect_error(bad_merge, "model.merges[0]");
  json bad_regex = tiny_tokenizer({});
  bad_regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_error(bad_regex, "regex");

  std::string truncated = testing::temp_dir();
  std::string text = tiny_tokenizer({}).dump();
  testing::write_file(truncated + "/tokenizer.json", text.substr(0, text.size() / 2));
  std::string message = load_error(truncated);
  EXPECT_NE(message.find(truncated + "/tokenizer.json: malformed JSON"), std::string::npos) << message;

  std::string empty_dir = testing::temp_dir();
  EXPECT_NE(load_error(empty_dir).find(empty_dir), std::string::npos);
}

TEST(TokenizerFile, MergesMayBeStringsOrPairs) {
  json as_pairs = tiny_tokenizer({{"a", "b"}});
  as_pairs["model"]["merges"] = json::array({json::array({spelling("a"), spelling("b")})});
  EXPECT_EQ(load_tiny(as_pairs).encode("ab"), Ids{256});
  EXPECT_EQ(load_tiny(tiny_tokenizer({{"a", "b"}})).encode("ab"), Ids{256});
}

// ---------------------------------------------------------------------------------------------
// Hugging Face goldens (scripts/make_tokenizer_goldens.py).

std::string golden_path(const std::string& name) { return testing::golden_dir() + "/tokenizer/" + name + ".jsonl"; }

std::string ids_text(const Ids& ids) { return json(ids).dump(); }

void check_against_goldens(const std::string& name) {
  const Tokenizer& t = real_tokenizer(name);
  std::ifstream in(golden_path(name));
  std::string line;
  size_t checked = 0, failures = 0;
  auto report = [&](const json& text, const std::string& what, const std::string& want, const std::string& got) {
    if (++failures <= 20)
      ADD_FAILURE() << name << ": mismatch in " << what << " for text " << text.dump() << "\n  huggingface: " << want
                    << "\n  kvlab:       " << got;
  };
  while (std::getline(in, line)) {
    json entry = json::parse(line);
    if (!entry.contains("text") || entry.contains("messages")) continue;  // chats: test_chat_template
    const std::string& text = entry["text"].get_ref<const std::string&>();
    Ids want = entry["ids"].get<Ids>();
    Ids got = t.encode(text);
    if (got != want) report(entry["text"], "ids", ids_text(want), ids_text(got));
    if (entry.contains("ids_special")) {
      Ids want_special = entry["ids_special"].get<Ids>(), got_special = t.encode(text, true);
      if (got_special != want_special)
        report(entry["text"], "ids with add_special", ids_text(want_special), ids_text(got_special));
    }
    std::string want_text = entry.value("decoded", text);
    std::string decoded = t.decode(want);
    if (decoded != want_text) report(entry["text"], "decode(ids)", json(want_text).dump(), json(decoded).dump());
    TokenStreamDecoder stream(t);
    std::string streamed;
    for (int32_t id : want) streamed += stream.push(id);
    streamed += stream.finish();
    if (streamed != decoded) report(entry["text"], "streamed decode", json(decoded).dump(), json(streamed).dump());
    ++checked;
  }
  std::cout << "[          ] " << name << ": " << checked << " golden lines checked, " << failures
            << " mismatches\n";
  ::testing::Test::RecordProperty(name + "_lines_checked", int(checked));
  EXPECT_GT(checked, 2000u);
  EXPECT_EQ(failures, 0u);
}

#define REQUIRE_GOLDENS(name)                                                                   \
  REQUIRE_TOKENIZER(name);                                                                      \
  if (!fs::exists(golden_path(name)))                                                           \
  GTEST_SKIP() << "no " << golden_path(name)                                                    \
               << " yet: it is made on a machine with Hugging Face tokenizers by "              \
                  "scripts/make_tokenizer_goldens.py (see tests/golden/README.md)"

TEST(TokenizerGoldens, Llama3MatchesHuggingFace) {
  REQUIRE_GOLDENS("llama3_1");
  check_against_goldens("llama3_1");
}

TEST(TokenizerGoldens, Qwen3MatchesHuggingFace) {
  REQUIRE_GOLDENS("qwen3");
  check_against_goldens("qwen3");
}

// ---------------------------------------------------------------------------------------------
// kvlab-tokenize as a user runs it.

std::string app() { return testing::bin_dir() + "/kvlab-tokenize"; }

TEST(TokenizeApp, EncodesAndDecodesJsonLines) {
  REQUIRE_TOKENIZER("llama3_1");
  std::string dir = testing::temp_dir();
  testing::write_file(dir + "/in.jsonl", "{\"text\": \"Hello world\"}\n\n{\"text\": \"\"}\n");
  auto r = testing::run_command(app() + " --tokenizer " + real_tokenizer_dir("llama3_1") + " --add-special --input " +
                                dir + "/in.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\":[128000,9906,1917],\"n\":3}\n{\"ids\":[128000],\"n\":1}\n");

  testing::write_file(dir + "/ids.jsonl", "{\"ids\": [128000, 9906, 1917]}\n");
  r = testing::run_command(app() + " --tokenizer " + real_tokenizer_dir("llama3_1") + " --decode < " + dir + "/ids.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"text\":\"<|begin_of_text|>Hello world\"}\n");
}

TEST(TokenizeApp, MalformedLineExitsTwoNamingFileAndLine) {
  REQUIRE_TOKENIZER("qwen3");
  std::string dir = testing::temp_dir();
  testing::write_file(dir + "/in.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"broken\n{\"text\": \"never read\"}\n");
  auto r = testing::run_command(app() + " --tokenizer " + real_tokenizer_dir("qwen3") + " --input " + dir + "/in.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(dir + "/in.jsonl:2:"), std::string::npos) << r.err;

  r = testing::run_command("printf '{\"text\": 5}\\n' | " + app() + " --tokenizer " + real_tokenizer_dir("qwen3"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("stdin:1:"), std::string::npos) << r.err;

  r = testing::run_command("printf '{\"ids\": [1, 99999999]}\\n' | " + app() + " --decode --tokenizer " +
                           real_tokenizer_dir("qwen3"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("stdin:1:"), std::string::npos) << r.err;

  r = testing::run_command(app() + " --tokenizer " + dir + "/missing.json --count " + dir + "/in.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(dir + "/missing.json"), std::string::npos) << r.err;
}

TEST(TokenizeApp, CountsTokensOfFiles) {
  REQUIRE_TOKENIZER("llama3_1");
  const Tokenizer& t = real_tokenizer("llama3_1");
  std::string dir = testing::temp_dir();
  std::string a = "The quick brown fox jumps over the lazy dog.\n", b = "日本語のテキスト\n\n  spaces  ";
  testing::write_file(dir + "/a.txt", a);
  testing::write_file(dir + "/b.txt", b);
  testing::write_file(dir + "/bad.txt", "ok\xff");
  size_t na = t.encode(a).size(), nb = t.encode(b).size();
  auto r = testing::run_command(app() + " --tokenizer " + real_tokenizer_dir("llama3_1") + " --count " + dir +
                                "/a.txt " + dir + "/b.txt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(na) + "\t" + dir + "/a.txt\n" + std::to_string(nb) + "\t" + dir + "/b.txt\n" +
                       std::to_string(na + nb) + "\ttotal\n");

  r = testing::run_command(app() + " --tokenizer " + real_tokenizer_dir("llama3_1") + " --count " + dir + "/bad.txt");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(dir + "/bad.txt: input is not valid UTF-8 at byte 2"), std::string::npos) << r.err;
}

TEST(TokenizeApp, HelpExplainsEveryFlag) {
  auto r = testing::run_command(app() + " --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--tokenizer", "--add-special", "--decode", "--input", "--count", "--chat", "--chat-format"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace kvlab
