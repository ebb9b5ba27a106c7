#include "tasks/qa.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cache/cached_sequence.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "model/chat_template.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/transformer.h"
#include "tasks/jsonl_dataset.h"
#include "tasks/metrics.h"
#include "tasks/run_stats.h"
#include "tasks/task.h"

namespace kvlab {

namespace {

std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text, bool chat) {
  if (!chat) return tok.encode(text, true);
  // The rendered template carries the begin-of-text token itself.
  return tok.encode(apply_chat_template(chat_format_for(tok), {{"user", text}}), false);
}

const std::string kDefaultTemplate =
    "Answer the question based on the text below. Give only the answer, in as few words as possible.\n\n"
    "{context}\n\nQuestion: {question}\nAnswer:";

}  // namespace

std::string qa_prompt_text(const std::string& prompt_template, const std::string& context,
                           const std::string& question) {
  const std::string& t = prompt_template.empty() ? kDefaultTemplate : prompt_template;
  // One pass over the template, so a context that contains "{question}" stays as it is.
  std::string out;
  for (size_t i = 0; i < t.size();) {
    if (t.compare(i, 9, "{context}") == 0) {
      out += context;
      i += 9;
    } else if (t.compare(i, 10, "{question}") == 0) {
      out += question;
      i += 10;
    } else if (t.compare(i, 7, "{input}") == 0) {
      out += question;
      i += 7;
    } else {
      out += t[i++];
    }
  }
  return out;
}

std::string qa_prompt_text(const std::string& context, const std::string& question) {
  return qa_prompt_text("", context, question);
}

void check_qa_template(const std::string& prompt_template) {
  if (prompt_template.empty()) return;
  size_t n = 0;
  for (size_t at = prompt_template.find("{context}"); at != std::string::npos;
       at = prompt_template.find("{context}", at + 1))
    n++;
  if (n != 1)
    fail("qa: --prompt-template must hold {context} exactly once (it holds it " + std::to_string(n) +
         " times); {question} or {input} stand for the question");
}

std::optional<QaPrompt> build_qa_prompt(const Tokenizer& tok, const QaExample& ex, bool chat, int max_tokens,
                                        bool truncate, const std::string& prompt_template) {
  QaPrompt p;
  p.ids = encode_prompt(tok, qa_prompt_text(prompt_template, ex.context, ex.question), chat);
  if (int(p.ids.size()) <= max_tokens) return p;
  if (!truncate) return std::nullopt;
  const std::vector<int32_t> context = tok.encode(ex.context);
  int keep = max_tokens - (int(p.ids.size()) - int(context.size()));
  // Re-tokenizing the joined halves can merge differently at the seam: shrink until it fits.
  for (;;) {
    if (keep < 2) return std::nullopt;
    const int head = keep / 2;
    const std::string text = tok.decode({context.begin(), context.begin() + head}) +
                             tok.decode({context.end() - (keep - head), context.end()});
    p.ids = encode_prompt(tok, qa_prompt_text(prompt_template, text, ex.question), chat);
    p.context_tokens_dropped = int(context.size()) - keep;
    if (int(p.ids.size()) <= max_tokens) return p;
    keep -= int(p.ids.size()) - max_tokens;
  }
}

QaScores score_qa(const std::string& prediction, const QaExample& ex) {
  QaScores s;
  s.em = best_over_golds(exact_match, prediction, ex.answers);
  s.f1 = best_over_golds(token_f1, prediction, ex.answers);
  s.rouge_l = best_over_golds(rouge_l, prediction, ex.answers);
  s.accuracy = best_over_golds(substring_match, prediction, ex.answers);
  if (ex.task_type == "em") s.score = s.em;
  else if (ex.task_type == "rouge") s.score = s.rouge_l;
  else if (ex.task_type == "accuracy" || ex.task_type == "classification") s.score = s.accuracy;
  else s.score = s.f1;
  return s;
}

namespace {

struct Mean {
  double sum = 0;
  int n = 0;
  void add(double x) { sum += x, n++; }
  double value() const { return n ? sum / n : 0.0; }
};

// LongBench-E's length buckets, over prompt tokens.
const char* length_bucket(size_t tokens) { return tokens < 4096 ? "0-4k" : tokens < 8192 ? "4-8k" : "8k+"; }

struct QaItem {
  QaExample example;
  QaPrompt prompt;
};

PreparedTask prepare_qa(const nlohmann::json& j, const TaskSetup& setup) {
  const std::string path = j["data"].get<std::string>();
  const int max_new = j["max_new_tokens"].get<int>(), limit = j["limit"].get<int>();
  const bool skip = j["skip_bad_lines"].get<bool>(), chat = j["chat"].get<bool>(),
             first_line = j["first_line"].get<bool>(), truncate = j["truncation"] == "middle";
  const std::string prompt_template = j["prompt_template"].get<std::string>();
  check_qa_template(prompt_template);
  const int trained = setup.model.context_window();
  if (max_new >= trained)
    fail("qa: --max-new-tokens " + std::to_string(max_new) + " leaves no room for a prompt in " +
         setup.model.context_window_text());
  int max_length = j["max_length"].get<int>();
  if (max_length == 0) max_length = trained - max_new;
  if (max_length + max_new > trained)
    fail("qa: --max-length " + std::to_string(max_length) + " plus --max-new-tokens " + std::to_string(max_new) +
         " exceeds " + setup.model.context_window_text());

  QaDataset data = load_qa_jsonl(path, skip);
  std::vector<QaItem> items;
  for (QaExample& ex : data.examples) {
    if (limit > 0 && int(items.size()) == limit) break;
    const bool as_chat = ex.chat.value_or(chat);
    std::optional<QaPrompt> p = build_qa_prompt(setup.tokenizer, ex, as_chat, max_length, truncate, prompt_template);
    if (!p) {
      reject_line(data,
                  {ex.line, "too long",
                   "the prompt is longer than " + std::to_string(max_length) + " tokens" +
                       (truncate ? " even without its context" : " (--truncation none)")},
                  skip);
      continue;
    }
    items.push_back({std::move(ex), std::move(*p)});
  }
  if (items.empty()) fail(path + ": no example fits in " + std::to_string(max_length) + " tokens");
  PreparedTask t;
  t.config = j;
  t.config["max_length"] = max_length;
  t.data_files = {path};
  for (const QaItem& it : items) t.context_tokens = std::max(t.context_tokens, int(it.prompt.ids.size()) + max_new);
  t.run = [items = std::move(items), skipped = skipped_json(data.skipped), lines = data.lines, max_new, first_line,
           &tok = setup.tokenizer, &cache = setup.cache](Transformer& model) {
    RunStats stats;
    Mean score, em, f1, rouge, accuracy;
    std::map<std::string, Mean> by_type, by_length;
    int truncated = 0;
    nlohmann::json rows = nlohmann::json::array();
    for (const QaItem& it : items) {
      CachedSequence seq(model, cache, int(it.prompt.ids.size()), max_new);
      GenerateOptions g;
      g.max_new_tokens = max_new;
      g.stop_ids = tok.eos_ids();
      g.on_step = [&](int) { stats.sample_kv(seq); };
      GenerateResult r = generate_greedy(seq, it.prompt.ids, g);
      stats.add_generation(r, it.prompt.ids.size());
      stats.end_sequence(seq);
      std::vector<int32_t> out = r.tokens;
      if (!out.empty() && std::count(g.stop_ids.begin(), g.stop_ids.end(), out.back())) out.pop_back();
      std::string prediction = tok.decode(out);
      if (first_line) {  // LongBench: pred.lstrip('\n').split('\n')[0]
        prediction.erase(0, prediction.find_first_not_of('\n'));
        prediction = prediction.substr(0, prediction.find('\n'));
      }
      const QaScores s = score_qa(prediction, it.example);
      score.add(s.score), em.add(s.em), f1.add(s.f1), rouge.add(s.rouge_l), accuracy.add(s.accuracy);
      by_type[it.example.task_type].add(s.score);
      by_length[length_bucket(it.prompt.ids.size())].add(s.score);
      truncated += it.prompt.context_tokens_dropped > 0;
      rows.push_back({{"id", it.example.id},
                      {"line", it.example.line},
                      {"task_type", it.example.task_type},
                      {"prompt_tokens", it.prompt.ids.size()},
                      {"context_tokens_dropped", it.prompt.context_tokens_dropped},
                      {"prediction", prediction},
                      {"answers", it.example.answers},
                      {"score", s.score},
                      {"em", s.em},
                      {"f1", s.f1},
                      {"rouge_l", s.rouge_l},
                      {"accuracy", s.accuracy}});
      if (interrupted()) break;
    }
    auto table = [](const std::map<std::string, Mean>& groups) {
      nlohmann::json out = nlohmann::json::object();
      for (auto& [k, m] : groups) out[k] = {{"score", m.value()}, {"examples", m.n}};
      return out;
    };
    nlohmann::json m = {{"metric", "per example: task_type qa = token F1, em = exact match, rouge = ROUGE-L F1, "
                                   "accuracy/classification = normalized substring match"},
                        {"score", score.value()},
                        {"em", em.value()},
                        {"f1", f1.value()},
                        {"rouge_l", rouge.value()},
                        {"accuracy", accuracy.value()},
                        {"examples", score.n},
                        {"lines", lines},
                        {"truncated", truncated},
                        {"skipped", skipped},
                        {"by_task_type", table(by_type)},
                        {"by_length", table(by_length)}};
    m.update(stats.to_json());
    m["per_example"] = rows;
    char line[200];
    std::snprintf(line, sizeof line, "qa: score %.3f over %d examples (EM %.3f, F1 %.3f, ROUGE-L %.3f, accuracy %.3f; "
                  "%d truncated, %d lines skipped)",
                  score.value(), score.n, em.value(), f1.value(), rouge.value(), accuracy.value(), truncated,
                  skipped["count"].get<int>());
    return TaskResult{m, line};
  };
  return t;
}

}  // namespace

extern const TaskInfo kQaTask{
    "qa",
    "question answering on your own JSON Lines data, scored with LongBench's metrics",
    "Prompt: \"Answer the question based on the text below. Give only the answer, in as few words as possible.\" "
    "then a blank line, the context, a blank line, \"Question: QUESTION\" and \"Answer:\" on its own line, or "
    "--prompt-template's text with {context} and {question} (or LongBench's {input}) filled in; raw "
    "(with the tokenizer's special prefix) or, with --chat or an example's \"chat\": true, as one user turn of the "
    "model's chat template. A prompt over --max-length tokens loses the middle of its context (LongBench keeps the "
    "first and last halves) unless --truncation none, which makes it an error for its line. Generates up to "
    "--max-new-tokens greedily, stopping at end-of-sequence (--first-line keeps only the first line of the output). "
    "Answers and predictions are normalized as LongBench does (lowercase, no punctuation, no a/an/the, whitespace "
    "collapsed); each example gets EM, token F1, ROUGE-L F1 and substring accuracy, best over its answers, and its "
    "score is the one its task_type names (qa: F1, em, rouge, accuracy or classification: substring). Bad lines "
    "stop the run naming file:line, or with --skip-bad-lines are counted by kind in the report. Deterministic: no "
    "seed.",
    {{"data", TaskOption::Path, "datasets/qa/example.jsonl", "JSON Lines dataset (see docs/tasks.md)", -1e300, 1e300,
      {}},
     {"max_new_tokens", TaskOption::Int, 32, "tokens to generate at most", 1, 1 << 20, {}},
     {"max_length", TaskOption::Int, 0,
      "prompt tokens allowed (0: the model's context window minus --max-new-tokens)", 0, 1 << 30, {}},
     {"truncation", TaskOption::String, "middle", "middle: cut the context's middle to fit; none: too long is an error",
      -1e300, 1e300, {"middle", "none"}},
     {"chat", TaskOption::Bool, false, "wrap prompts in the chat template (an example's \"chat\" field wins)", -1e300,
      1e300, {}},
     {"first_line", TaskOption::Bool, false, "score only the first line of the output", -1e300, 1e300, {}},
     {"skip_bad_lines", TaskOption::Bool, false, "skip malformed or unusable lines, counting them in the report",
      -1e300, 1e300, {}},
     {"limit", TaskOption::Int, 0, "run the first N usable examples (0: all)", 0, 1 << 30, {}},
     {"prompt_template", TaskOption::String, "",
      "the prompt with {context} once and {question} (or {input}) where the question goes, e.g. a LongBench "
      "dataset's (empty: the one above)",
      -1e300, 1e300, {}}},
    prepare_qa};

}  // namespace kvlab
