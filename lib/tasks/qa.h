#pragma once
// Question answering on the user's own data (a JSON Lines file, see jsonl_dataset.h), scored as
// LongBench scores: EM, token F1, ROUGE-L and substring accuracy over normalized answers.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvlab {

class Tokenizer;
struct QaExample;

// The prompt's text: `prompt_template` with its one {context} and every {question} (or {input},
// LongBench's name) filled in, other text (braces included) as written; an empty template is the
// documented default: an instruction, the context, the question, "Answer:".
std::string qa_prompt_text(const std::string& prompt_template, const std::string& context,
                           const std::string& question);
std::string qa_prompt_text(const std::string& context, const std::string& question);
// Error (exit code 2) unless a non-empty template holds {context} exactly once.
void check_qa_template(const std::string& prompt_template);

struct QaPrompt {
  std::vector<int32_t> ids;
  int context_tokens_dropped = 0;  // by middle truncation
};

// The example's prompt in at most `max_tokens` tokens, raw (with the tokenizer's special prefix)
// or as one user turn of the chat template. Longer prompts lose the middle of their context
// (LongBench keeps the first and last halves), or give nullopt when `truncate` is off.
std::optional<QaPrompt> build_qa_prompt(const Tokenizer& tok, const QaExample& ex, bool chat, int max_tokens,
                                        bool truncate, const std::string& prompt_template = "");

struct QaScores {
  double em = 0, f1 = 0, rouge_l = 0, accuracy = 0;
  double score = 0;  // the one the example's task_type names
};
QaScores score_qa(const std::string& prediction, const QaExample& ex);

}  // namespace kvlab
