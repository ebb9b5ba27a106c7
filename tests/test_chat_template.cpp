// Chat templates written as code, held to hand-written renderings of the Jinja templates and,
// once generated, to transformers' apply_chat_template goldens.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/byte_level.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Chat = std::vector<ChatMessage>;

std::string real_tokenizer_dir(const std::string& name) { return testing::tokenizer_dir() + "/" + name; }

#define REQUIRE_TOKENIZER(name)                                                   \
  if (!fs::exists(real_tokenizer_dir(name) + "/tokenizer.json"))                  \
  GTEST_SKIP() << "no " << real_tokenizer_dir(name)                               \
               << "/tokenizer.json; scripts/fetch_tokenizers.sh fetches it"

const char* const kLlamaPrompt = "<|start_header_id|>assistant<|end_header_id|>\n\n";

TEST(ChatTemplate, Llama3RendersEachTurnTrimmed) {
  Chat chat = {{"system", "You are helpful."}, {"user", " \u3000Hi\u200b\n"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::Llama3, chat),
            std::string("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
                        "<|start_header_id|>user<|end_header_id|>\n\nHi\u200b<|eot_id|>") +  // U+200B is not a space
                kLlamaPrompt);
  ChatOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  EXPECT_EQ(apply_chat_template(ChatFormat::Llama3, {{"user", "Hi"}}, no_prompt),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplate, Llama31AlwaysOpensWithTheDatedSystemTurn) {
  const std::string header =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
      "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
  EXPECT_EQ(apply_chat_template(ChatFormat::Llama31, {{"user", "Hi"}}),
            header + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" + kLlamaPrompt);
  EXPECT_EQ(apply_chat_template(ChatFormat::Llama31, {{"system", "  Be brief.\n"}, {"user", "Hi"}}),
            header + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" + kLlamaPrompt);
  EXPECT_THROW(apply_chat_template(ChatFormat::Llama31, {{"user", "Hi"}, {"tool", "{}"}}), Error);
}

TEST(ChatTemplate, ChatMLFollowsQwen3) {
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, {{"user", "Hi"}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, {{"system", "S"}, {"user", " U "}}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n U <|im_end|>\n<|im_start|>assistant\n");
  ChatOptions no_thinking;
  no_thinking.enable_thinking = false;
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, {{"user", "Hi"}}, no_thinking),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, ChatMLDropsOldReasoningAndShowsTheLatest) {
  Chat history = {{"user", "Q1"}, {"assistant", "<think>\nr1\n</think>\n\nA1"}, {"user", "Q2"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, history),
            "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n");
  ChatOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, {{"user", "Hi"}, {"assistant", "Hello"}}, no_prompt),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello<|im_end|>\n");
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, {{"user", "Hi"}, {"assistant", "<think>\nGreet.\n</think>\n\nHello!"}},
                                no_prompt),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nGreet.\n</think>\n\nHello!<|im_end|>\n");
  // A user turn that only carries a tool response is not the last query.
  Chat multi_step = {{"user", "Q"}, {"assistant", "A"}, {"user", "<tool_response>x</tool_response>"}, {"assistant", "B"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, multi_step, no_prompt),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            "<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\nB<|im_end|>\n");
}

TEST(ChatTemplate, ChatMLGroupsToolResponsesInOneUserTurn) {
  Chat chat = {{"user", "Call"}, {"assistant", "Calling."}, {"tool", "r1"}, {"tool", "r2"}, {"user", "Thanks"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, chat),
            "<|im_start|>user\nCall<|im_end|>\n<|im_start|>assistant\nCalling.<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n"
            "<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, BadConversationsAreErrors) {
  EXPECT_THROW(apply_chat_template(ChatFormat::ChatML, {}), Error);
  EXPECT_THROW(apply_chat_template(ChatFormat::Llama3, {}), Error);
  EXPECT_THROW(apply_chat_template(ChatFormat::ChatML, {{"developer", "x"}}), Error);
  EXPECT_THROW(apply_chat_template(ChatFormat::Llama3, {{"user", "bad \xff"}}), Error);
  EXPECT_EQ(parse_chat_format("llama3.1"), ChatFormat::Llama31);
  EXPECT_EQ(parse_chat_format(chat_format_name(ChatFormat::ChatML)), ChatFormat::ChatML);
  EXPECT_THROW(parse_chat_format("jinja"), Error);
}

TEST(ChatTemplate, FormatComesFromTheTokenizer) {
  REQUIRE_TOKENIZER("llama3_1");
  REQUIRE_TOKENIZER("qwen3");
  Tokenizer llama = Tokenizer::load(real_tokenizer_dir("llama3_1"));
  // The fetched Llama-3.1 tokenizer_config.json carries Llama-3's template (no dated system turn);
  // kvlab follows whichever the file has.
  ASSERT_FALSE(llama.chat_template().empty());
  bool dated = llama.chat_template().find("Cutting Knowledge Date") != std::string::npos;
  EXPECT_EQ(chat_format_for(llama), dated ? ChatFormat::Llama31 : ChatFormat::Llama3);
  EXPECT_EQ(chat_format_for(Tokenizer::load(real_tokenizer_dir("qwen3"))), ChatFormat::ChatML);

  // A byte-level tokenizer of neither family: an error that names the file.
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    std::string spelling;
    append_utf8(spelling, byte_level_char(uint8_t(b)));
    vocab[spelling] = b;
  }
  json plain = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
                {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
                {"decoder", {{"type", "ByteLevel"}}}};
  std::string dir = testing::temp_dir();
  testing::write_file(dir + "/tokenizer.json", plain.dump());
  try {
    chat_format_for(Tokenizer::load(dir));
    ADD_FAILURE() << "no error for a tokenizer without chat tokens";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/tokenizer.json"), std::string::npos) << e.what();
  }
  auto r = testing::run_command("echo '{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}' | " +
                                testing::bin_dir() + "/kvlab-tokenize --chat --tokenizer " + dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown chat format"), std::string::npos) << r.err;
}

TEST(ChatTemplate, TokenizeAppRendersAndEncodesChats) {
  REQUIRE_TOKENIZER("qwen3");
  Tokenizer qwen = Tokenizer::load(real_tokenizer_dir("qwen3"));
  Chat chat = {{"system", "Be brief."}, {"user", "日本語で？"}};
  std::string text = apply_chat_template(ChatFormat::ChatML, chat);
  std::string dir = testing::temp_dir();
  testing::write_file(dir + "/chat.jsonl",
                      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "日本語で？"}]})"
                      "\n");
  auto r = testing::run_command(testing::bin_dir() + "/kvlab-tokenize --chat --tokenizer " + real_tokenizer_dir("qwen3") +
                                " --input " + dir + "/chat.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json out = json::parse(r.out);
  EXPECT_EQ(out["text"], text);
  EXPECT_EQ(out["ids"].get<std::vector<int32_t>>(), qwen.encode(text));
  r = testing::run_command(testing::bin_dir() + "/kvlab-tokenize --chat --chat-format llama3 --tokenizer " +
                           real_tokenizer_dir("qwen3") + " --input " + dir + "/chat.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["text"], apply_chat_template(ChatFormat::Llama3, chat));
}

// Goldens from scripts/make_tokenizer_goldens.py: the chat lines of each tokenizer's file.
void check_chat_goldens(const std::string& name) {
  std::string path = testing::golden_dir() + "/tokenizer/" + name + ".jsonl";
  if (!fs::exists(path))
    GTEST_SKIP() << "no " << path << " yet: it is made on a machine with Hugging Face transformers by "
                 << "scripts/make_tokenizer_goldens.py (see tests/golden/README.md)";
  Tokenizer tokenizer = Tokenizer::load(real_tokenizer_dir(name));
  ChatFormat format = chat_format_for(tokenizer);
  std::ifstream in(path);
  std::string line;
  size_t checked = 0;
  while (std::getline(in, line)) {
    json entry = json::parse(line);
    if (!entry.contains("messages")) continue;
    Chat chat;
    for (const json& m : entry["messages"]) chat.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    ChatOptions options;
    options.add_generation_prompt = entry.value("add_generation_prompt", true);
    options.enable_thinking = entry.value("enable_thinking", true);
    std::string text = apply_chat_template(format, chat, options);
    EXPECT_EQ(text, entry["text"].get<std::string>()) << name << ": " << entry["messages"].dump();
    EXPECT_EQ(tokenizer.encode(text), entry["ids"].get<std::vector<int32_t>>()) << name << ": " << json(text).dump();
    ++checked;
  }
  std::cout << "[          ] " << name << ": " << checked << " golden chats checked with format "
            << chat_format_name(format) << "\n";
  EXPECT_GT(checked, 0u);
}

TEST(ChatTemplateGoldens, Llama3MatchesTransformers) {
  REQUIRE_TOKENIZER("llama3_1");
  check_chat_goldens("llama3_1");
}

TEST(ChatTemplateGoldens, Qwen3MatchesTransformers) {
  REQUIRE_TOKENIZER("qwen3");
  check_chat_goldens("qwen3");
}

}  // namespace
}  // namespace kvlab
