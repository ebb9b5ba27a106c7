// kvlab-tokenize: encode, decode and count tokens with a tokenizer.json, as JSON Lines.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace {
using json = nlohmann::json;
using kvlab::fail;

enum class Mode { Encode, Decode, Chat };

struct Options {
  std::string tokenizer;
  std::string input;
  bool add_special = false;
  bool decode = false;
  bool chat = false;
  std::string chat_format = "auto";
  std::vector<std::string> count;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_ids(std::string& out, const std::vector<int32_t>& ids) {
  out += "\"ids\":[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += "],\"n\":" + std::to_string(ids.size());
}

std::vector<kvlab::ChatMessage> read_messages(const json& line) {
  if (!line.contains("messages") || !line["messages"].is_array())
    fail("expected {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
  std::vector<kvlab::ChatMessage> messages;
  for (const json& m : line["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      fail("each message needs string fields \"role\" and \"content\"");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

// One output line for one input line.
std::string process_line(const std::string& line, Mode mode, const kvlab::Tokenizer& tokenizer,
                         bool add_special, kvlab::ChatFormat chat_format) {
  json in;
  try {
    in = json::parse(line);
  } catch (const json::exception& e) {
    fail(std::string("malformed JSON: ") + e.what());
  }
  if (!in.is_object()) fail("expected a JSON object");
  std::string out = "{";
  if (mode == Mode::Decode) {
    if (!in.contains("ids") || !in["ids"].is_array()) fail("expected {\"ids\": [...]}");
    std::vector<int32_t> ids;
    for (const json& id : in["ids"]) {
      if (!id.is_number_integer()) fail("ids must be integers");
      ids.push_back(int32_t(id.get<int64_t>()));
    }
    out += "\"text\":" + json(tokenizer.decode(ids)).dump();
  } else if (mode == Mode::Chat) {
    std::string text = kvlab::apply_chat_template(chat_format, read_messages(in));
    out += "\"text\":" + json(text).dump() + ",";
    write_ids(out, tokenizer.encode(text, add_special));
  } else {
    if (!in.contains("text") || !in["text"].is_string()) fail("expected {\"text\": \"...\"}");
    write_ids(out, tokenizer.encode(in["text"].get_ref<const std::string&>(), add_special));
  }
  return out + "}\n";
}

void process_lines(std::istream& in, const std::string& name, Mode mode,
                   const kvlab::Tokenizer& tokenizer, bool add_special, kvlab::ChatFormat chat_format) {
  std::string line, out;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines are not inputs
    try {
      out = process_line(line, mode, tokenizer, add_special, chat_format);
    } catch (const kvlab::Error& e) {
      fail(name + ":" + std::to_string(number) + ": " + e.what(), e.code());
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  if (in.bad()) fail("cannot read " + name);
}

// Prints "<count>\t<file>" per file and "<total>\ttotal", as wc does.
void count_files(const std::vector<std::string>& files, const kvlab::Tokenizer& tokenizer,
                 bool add_special) {
  size_t total = 0;
  for (const std::string& file : files) {
    size_t n = 0;
    try {
      n = tokenizer.encode(read_file(file), add_special).size();
    } catch (const kvlab::Error& e) {
      fail(file + ": " + e.what(), e.code());
    }
    total += n;
    std::printf("%zu\t%s\n", n, file.c_str());
  }
  std::printf("%zu\ttotal\n", total);
}

int tokenize_main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Encodes text to token ids with a Hugging Face tokenizer.json (byte-level BPE: Llama-3, Qwen2/3),\n"
      "decodes ids to text, or counts the tokens of files. Reads and writes JSON Lines."};
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json, or a directory holding it (and tokenizer_config.json)")
      ->required();
  app.add_option("--input", o.input, "read JSON Lines from FILE instead of standard input");
  app.add_flag("--add-special", o.add_special,
               "add the tokenizer's special tokens around each text (Llama-3: <|begin_of_text|>; Qwen: none)");
  app.add_flag("--decode", o.decode, "read {\"ids\": [...]} lines and write {\"text\": ...} lines");
  app.add_flag("--chat", o.chat,
               "read {\"messages\": [{\"role\", \"content\"}, ...]} lines, apply the chat template with the\n"
               "assistant prompt appended, and write {\"text\": ..., \"ids\": [...], \"n\": N}");
  app.add_option("--chat-format", o.chat_format,
                 "chat template for --chat: auto (from the tokenizer), llama3, llama3.1 or chatml")
      ->default_val("auto");
  app.add_option("--count", o.count,
                 "print the token count of each plain-text FILE and their total, instead of reading JSON Lines");
  app.footer("Without --decode, --chat or --count: reads {\"text\": ...} lines and writes {\"ids\": [...], \"n\": N}.\n"
             "Errors name the input (file or stdin) and line; the exit code is 2 for bad input.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kvlab::kExitOk : kvlab::kExitBadInput;
  }
  if (int(o.decode) + int(o.chat) + int(!o.count.empty()) > 1)
    fail("--decode, --chat and --count exclude one another");

  kvlab::Tokenizer tokenizer = kvlab::Tokenizer::load(o.tokenizer);
  if (!o.count.empty()) {
    count_files(o.count, tokenizer, o.add_special);
    return kvlab::kExitOk;
  }
  Mode mode = o.decode ? Mode::Decode : o.chat ? Mode::Chat : Mode::Encode;
  kvlab::ChatFormat chat_format = kvlab::ChatFormat::ChatML;
  if (mode == Mode::Chat)
    chat_format = o.chat_format == "auto" ? kvlab::chat_format_for(tokenizer) : kvlab::parse_chat_format(o.chat_format);

  std::ios::sync_with_stdio(false);
  if (o.input.empty()) {
    process_lines(std::cin, "stdin", mode, tokenizer, o.add_special, chat_format);
  } else {
    std::ifstream file(o.input, std::ios::binary);
    if (!file) fail("cannot read " + o.input);
    process_lines(file, o.input, mode, tokenizer, o.add_special, chat_format);
  }
  return kvlab::kExitOk;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-tokenize", tokenize_main, argc, argv); }
