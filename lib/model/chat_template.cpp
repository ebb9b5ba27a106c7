#include "model/chat_template.h"

#include "core/error.h"
#include "model/byte_level.h"
#include "model/tokenizer.h"

namespace kvlab {
namespace {

// Python's str.isspace(), which Jinja's trim filter (str.strip) uses.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Jinja's `trim`: Python's str.strip() with no argument.
std::string trim(std::string_view s) {
  size_t begin = 0, end = s.size();
  while (begin < end) {
    size_t next = begin;
    if (!is_python_space(next_code_point(s, next))) break;
    begin = next;
  }
  while (end > begin) {
    size_t start = 0;
    if (!is_python_space(previous_code_point(s, end, start))) break;
    end = start;
  }
  return std::string(s.substr(begin, end - begin));
}

std::string_view lstrip_newlines(std::string_view s) {
  size_t n = s.find_first_not_of('\n');
  return n == std::string_view::npos ? std::string_view() : s.substr(n);
}

std::string_view rstrip_newlines(std::string_view s) {
  size_t n = s.find_last_not_of('\n');
  return n == std::string_view::npos ? std::string_view() : s.substr(0, n + 1);
}

// Python's s.split(sep)[-1] and s.split(sep)[0].
std::string_view after_last(std::string_view s, std::string_view sep) {
  size_t at = s.rfind(sep);
  return at == std::string_view::npos ? s : s.substr(at + sep.size());
}
std::string_view before_first(std::string_view s, std::string_view sep) {
  return s.substr(0, s.find(sep));
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

const char* const kLlamaBos = "<|begin_of_text|>";
const char* const kLlamaAssistantHeader = "<|start_header_id|>assistant<|end_header_id|>\n\n";

std::string llama_turn(const ChatMessage& m) {
  return "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
}

// Meta-Llama-3's template: each turn's content trimmed, <|begin_of_text|> before the first.
std::string render_llama3(const std::vector<ChatMessage>& messages, const ChatOptions& options) {
  std::string out = kLlamaBos;
  for (const ChatMessage& m : messages) out += llama_turn(m);
  if (options.add_generation_prompt) out += kLlamaAssistantHeader;
  return out;
}

// Llama-3.1's template without tools: a system turn always comes first and carries the dates
// (date_string defaults to "26 Jul 2024"); the system message, if any, is appended to it.
std::string render_llama31(const std::vector<ChatMessage>& messages, const ChatOptions& options) {
  size_t first = 0;
  std::string system_message;
  if (messages[0].role == "system") {
    system_message = trim(messages[0].content);
    first = 1;
  }
  std::string out = kLlamaBos;
  out += "<|start_header_id|>system<|end_header_id|>\n\n";
  out += "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
  out += system_message + "<|eot_id|>";
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "tool" || m.role == "ipython")
      fail("chat message " + std::to_string(i) + ": role '" + m.role +
           "' is not supported by the llama3.1 chat format");
    out += llama_turn(m);
  }
  if (options.add_generation_prompt) out += kLlamaAssistantHeader;
  return out;
}

bool is_tool_response(const ChatMessage& m) {
  return starts_with(m.content, "<tool_response>") && ends_with(m.content, "</tool_response>");
}

// Qwen3's template without tools. Assistant turns after the last real user query show their
// reasoning in a <think> block (the final one always, empty if need be); earlier ones drop it.
std::string render_chatml(const std::vector<ChatMessage>& messages, const ChatOptions& options) {
  const size_t n = messages.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      fail("chat message " + std::to_string(i) + ": role '" + role +
           "' is not supported by the chatml chat format (system, user, assistant, tool)");
  }
  std::string out;
  if (messages[0].role == "system") out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";

  size_t last_query = n - 1;
  for (size_t i = n; i-- > 0;) {
    if (messages[i].role == "user" && !is_tool_response(messages[i])) {
      last_query = i;
      break;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    const bool last = i + 1 == n;
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string_view content = m.content, reasoning;
      if (m.content.find("</think>") != std::string::npos) {
        content = lstrip_newlines(after_last(m.content, "</think>"));
        reasoning = lstrip_newlines(after_last(rstrip_newlines(before_first(m.content, "</think>")), "<think>"));
      }
      if (i > last_query && (last || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n";
        out += lstrip_newlines(rstrip_newlines(reasoning));
        out += "\n</think>\n\n";
        out += lstrip_newlines(content);
      } else {
        out += "<|im_start|>assistant\n";
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (last || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (options.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!options.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

}  // namespace

ChatFormat chat_format_for(const Tokenizer& tokenizer) {
  if (tokenizer.token_id("<|start_header_id|>") && tokenizer.token_id("<|eot_id|>"))
    return tokenizer.chat_template().find("Cutting Knowledge Date") != std::string::npos
               ? ChatFormat::Llama31
               : ChatFormat::Llama3;
  if (tokenizer.token_id("<|im_start|>") && tokenizer.token_id("<|im_end|>")) return ChatFormat::ChatML;
  fail(tokenizer.path() + ": unknown chat format: the vocabulary has neither <|start_header_id|> "
                          "(llama3) nor <|im_start|> (chatml); name the format explicitly");
}

ChatFormat parse_chat_format(std::string_view name) {
  if (name == "llama3") return ChatFormat::Llama3;
  if (name == "llama3.1") return ChatFormat::Llama31;
  if (name == "chatml") return ChatFormat::ChatML;
  fail("unknown chat format '" + std::string(name) + "' (expected llama3, llama3.1 or chatml)");
}

const char* chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::Llama3: return "llama3";
    case ChatFormat::Llama31: return "llama3.1";
    case ChatFormat::ChatML: return "chatml";
  }
  return "?";
}

std::string apply_chat_template(ChatFormat format, const std::vector<ChatMessage>& messages,
                                const ChatOptions& options) {
  if (messages.empty()) fail("a chat needs at least one message");
  for (size_t i = 0; i < messages.size(); ++i)
    if (std::optional<size_t> bad = find_invalid_utf8(messages[i].content))
      fail("chat message " + std::to_string(i) + ": content is not valid UTF-8 at byte " + std::to_string(*bad));
  switch (format) {
    case ChatFormat::Llama3: return render_llama3(messages, options);
    case ChatFormat::Llama31: return render_llama31(messages, options);
    case ChatFormat::ChatML: return render_chatml(messages, options);
  }
  fail("unknown chat format", kExitInternal);
}

}  // namespace kvlab
