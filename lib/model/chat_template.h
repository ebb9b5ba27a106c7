#pragma once
// Chat templates written as code: each format reproduces, for plain messages (no tools), what
// transformers' apply_chat_template(messages, add_generation_prompt=..., tokenize=False) renders
// with the model's Jinja template.
#include <string>
#include <string_view>
#include <vector>

namespace kvlab {

class Tokenizer;

enum class ChatFormat {
  Llama3,   // <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  Llama31,  // Llama3 plus the system header with "Cutting Knowledge Date" and "Today Date"
  ChatML,   // Qwen3: <|im_start|>role\ncontent<|im_end|>\n, with its <think> handling
};

struct ChatMessage {
  std::string role;  // system, user, assistant (ChatML also: tool)
  std::string content;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = true;  // ChatML: false appends Qwen3's empty <think></think> block
};

// The format the tokenizer's family uses: Llama31 when its tokenizer_config.json template has
// the "Cutting Knowledge Date" header, Llama3 for other <|start_header_id|> vocabularies, ChatML
// for <|im_start|> ones. Throws kvlab::Error for any other tokenizer.
ChatFormat chat_format_for(const Tokenizer& tokenizer);
// "llama3", "llama3.1" or "chatml"; throws kvlab::Error naming the accepted names otherwise.
ChatFormat parse_chat_format(std::string_view name);
const char* chat_format_name(ChatFormat format);

// Throws kvlab::Error for an empty conversation or a role the format cannot render.
std::string apply_chat_template(ChatFormat format, const std::vector<ChatMessage>& messages,
                                const ChatOptions& options = {});

}  // namespace kvlab
