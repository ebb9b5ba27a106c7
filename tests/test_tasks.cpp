// The long-context tasks: option handling, NIAH prompt construction, streaming perplexity
// against a direct forward pass, QA prompts, and kvlab-eval end to end on the tiny model (whose
// random weights make accuracy meaningless: these tests hold the mechanics).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "cache/cached_sequence.h"
#include "core/error.h"
#include "model/loaded_model.h"
#include "model/tokenizer.h"
#include "tasks/jsonl_dataset.h"
#include "tasks/niah.h"
#include "tasks/perplexity.h"
#include "tasks/qa.h"
#include "tasks/registry.h"
#include "tasks/run_stats.h"
#include "test_support.h"

namespace kvlab {
namespace {

using nlohmann::json;
using testing::run_command;

std::string tiny_dir() { return testing::source_dir() + "/datasets/models/tiny-random-llama"; }
std::string shakespeare() { return testing::source_dir() + "/datasets/text/tinyshakespeare.txt"; }
std::string example_qa() { return testing::source_dir() + "/datasets/qa/example.jsonl"; }
const Tokenizer& tiny_tokenizer() {
  static const Tokenizer tok = Tokenizer::load(tiny_dir());
  return tok;
}

using testing::error_of;

// ---------------------------------------------------------------- registry and options

TEST(TaskRegistry, NamesAreUniqueAndEveryTaskDescribesItsProtocol) {
  std::set<std::string> names;
  for (const TaskInfo& t : tasks()) {
    EXPECT_TRUE(names.insert(t.name).second) << t.name;
    EXPECT_FALSE(t.summary.empty()) << t.name;
    EXPECT_GT(t.description.size(), 200u) << t.name;
    EXPECT_NE(t.prepare, nullptr) << t.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{"passkey", "niah", "perplexity", "qa"}));
  EXPECT_NE(error_of([] { find_task("niha"); }).find("passkey, niah, perplexity, qa"), std::string::npos);
  EXPECT_NO_THROW(all_task_options());  // shared option names have one kind
  EXPECT_EQ(option_flag("max_new_tokens"), "--max-new-tokens");
}

TEST(TaskRegistry, FlagsBeatTheConfigFileWhichBeatsDefaults) {
  TaskOptionSources s;
  s.flags = {{"depths", "0,0.5"}, {"samples", "4"}};
  s.config = {{"samples", 3}, {"context", 300}};
  s.config_path = "c.json";
  json o = resolve_task_options(find_task("passkey"), s);
  EXPECT_EQ(o["depths"], json({0.0, 0.5}));
  EXPECT_EQ(o["samples"], 4);
  EXPECT_EQ(o["context"], 300);
  EXPECT_EQ(o["seed"], 0);
}

TEST(TaskRegistry, BadOptionValuesNameTheFlagOrKey) {
  auto resolve = [](const std::string& task, std::map<std::string, std::string> flags, json config = json::object()) {
    return error_of([&] {
      TaskOptionSources s;
      s.flags = flags;
      s.config = config;
      s.config_path = "cfg.json";
      resolve_task_options(find_task(task), s);
    });
  };
  EXPECT_NE(resolve("niah", {{"window", "5"}}).find("--window does not apply to task niah"), std::string::npos);
  EXPECT_NE(resolve("niah", {}, {{"window", 5}}).find("cfg.json: key \"window\" does not apply to task niah"),
            std::string::npos);
  EXPECT_NE(resolve("passkey", {}, {{"contxt", 5}}).find("unknown key \"contxt\""), std::string::npos);
  EXPECT_NE(resolve("passkey", {{"depths", "0,x"}}).find("--depths: \"x\" is not a number"), std::string::npos);
  EXPECT_NE(resolve("passkey", {{"depths", "1.5"}}).find("outside [0, 1]"), std::string::npos);
  EXPECT_NE(resolve("passkey", {{"samples", "2.5"}}).find("--samples: \"2.5\" is not an integer"), std::string::npos);
  EXPECT_NE(resolve("passkey", {}, {{"depths", "0.5"}}).find("cfg.json: key \"depths\" must be a non-empty list"),
            std::string::npos);
  EXPECT_NE(resolve("niah", {{"variant", "multi"}}).find("single, multikey, multivalue, multiquery"), std::string::npos);
  EXPECT_NE(resolve("qa", {}, {{"chat", "yes"}}).find("key \"chat\" must be true or false"), std::string::npos);
  EXPECT_NE(resolve("perplexity", {{"window", "0"}}).find("outside"), std::string::npos);
}

TEST(TaskRegistry, PathsResolveAgainstWhereTheyCameFrom) {
  TaskOptionSources s;
  s.default_base = "/repo";
  s.config_base = "/cfgroot";
  EXPECT_EQ(resolve_task_options(find_task("qa"), s)["data"], "/repo/datasets/qa/example.jsonl");
  s.config = {{"data", "d/x.jsonl"}};
  EXPECT_EQ(resolve_task_options(find_task("qa"), s)["data"], "/cfgroot/d/x.jsonl");
  s.flags = {{"data", "rel.jsonl"}};  // as typed: relative to the working directory
  EXPECT_EQ(resolve_task_options(find_task("qa"), s)["data"], "rel.jsonl");
}

TEST(TaskRegistry, DocsShowTheHelpVerbatim) {
  std::string docs = testing::read_file(testing::source_dir() + "/docs/tasks.md");
  EXPECT_NE(docs.find(tasks_help()), std::string::npos)
      << "docs/tasks.md is out of date: paste the output of kvlab-eval --help-tasks";
}

// ---------------------------------------------------------------- NIAH prompts

std::vector<std::string> shakespeare_lines() {
  static const std::vector<std::string> lines = [] {
    std::vector<std::string> out;
    std::istringstream in(testing::read_file(shakespeare()));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }();
  return lines;
}

std::string needle_sentence(const NiahNeedle& n) {
  return "One of the special magic numbers for " + n.key + " is: " + n.value + ".";
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

TEST(Niah, VariantsHaveTheRightNeedlesQueriesAndAnswers) {
  struct Want {
    NiahVariant variant;
    size_t needles, keys, queries, expected;
  };
  for (Want w : {Want{NiahVariant::Single, 1, 1, 1, 1}, Want{NiahVariant::MultiKey, 4, 4, 1, 1},
                 Want{NiahVariant::MultiValue, 4, 1, 1, 4}, Want{NiahVariant::MultiQuery, 4, 4, 4, 4}}) {
    NiahOptions o;
    o.variant = w.variant;
    NiahPrompt p = build_niah_prompt(tiny_tokenizer(), o, shakespeare_lines(), 800, 0.5, 42);
    SCOPED_TRACE(int(w.variant));
    ASSERT_EQ(p.needles.size(), w.needles);
    std::set<std::string> keys, values;
    for (const NiahNeedle& n : p.needles) {
      keys.insert(n.key);
      values.insert(n.value);
      EXPECT_EQ(occurrences(p.text, needle_sentence(n)), 1u) << n.key;
      EXPECT_EQ(n.value.size(), 7u);
      EXPECT_EQ(n.value.find_first_not_of("0123456789"), std::string::npos);
      EXPECT_NE(n.key.find('-'), std::string::npos);
    }
    EXPECT_EQ(keys.size(), w.keys);
    EXPECT_EQ(values.size(), w.needles);  // values never repeat
    ASSERT_EQ(p.queries.size(), w.queries);
    ASSERT_EQ(p.expected.size(), w.expected);
    // The expected values are exactly those of the asked keys' needles.
    std::vector<std::string> asked_values;
    for (const std::string& q : p.queries)
      for (const NiahNeedle& n : p.needles)
        if (n.key == q) {
          EXPECT_TRUE(n.asked);
          asked_values.push_back(n.value);
        }
    EXPECT_EQ(asked_values, p.expected);
    const std::string question = p.text.substr(p.haystack_end);
    for (const std::string& q : p.queries) EXPECT_EQ(occurrences(question, q), 2u) << q;
    EXPECT_LE(p.ids.size(), 800u);
    EXPECT_GT(p.ids.size(), 700u);  // filled with whole lines up to the length
    EXPECT_EQ(p.ids, tiny_tokenizer().encode(p.text, true));
    EXPECT_EQ(p.max_new_tokens, 16 * int(w.expected));
  }
}

TEST(Niah, TemplateIsRulersSingularOrPlural) {
  NiahOptions o;
  NiahPrompt one = build_niah_prompt(tiny_tokenizer(), o, shakespeare_lines(), 400, 0.5, 1);
  const std::string k = one.queries[0];
  EXPECT_EQ(one.text.rfind("A special magic number is hidden within the following text. Make sure to memorize it. "
                           "I will quiz you about the number afterwards.\n", 0), 0u);
  const std::string tail = "\nWhat is the special magic number for " + k + " mentioned in the provided text? The "
                           "special magic number for " + k + " mentioned in the provided text is";
  EXPECT_EQ(one.text.substr(one.text.size() - tail.size()), tail);

  o.variant = NiahVariant::MultiQuery;
  o.needles = 3;
  NiahPrompt many = build_niah_prompt(tiny_tokenizer(), o, shakespeare_lines(), 600, 0.5, 1);
  const std::string q = many.queries[0] + ", " + many.queries[1] + ", and " + many.queries[2];
  EXPECT_EQ(many.text.rfind("Some special magic numbers are hidden", 0), 0u);
  EXPECT_NE(many.text.find("What are all the special magic numbers for " + q + " mentioned in the provided text? "
                           "The special magic numbers for " + q + " mentioned in the provided text are"),
            std::string::npos);
}

TEST(Niah, TheAskedNeedleSitsAtTheRequestedDepth) {
  NiahOptions o;
  o.variant = NiahVariant::MultiKey;
  for (double depth : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0}) {
    NiahPrompt p = build_niah_prompt(tiny_tokenizer(), o, shakespeare_lines(), 1000, depth, 7);
    const NiahNeedle* target = nullptr;
    for (const NiahNeedle& n : p.needles)
      if (n.key == p.queries[0]) target = &n;
    ASSERT_NE(target, nullptr);
    EXPECT_EQ(target->depth, depth);
    // Depth counts haystack lines: round(depth * lines) of them come before the needle.
    std::istringstream haystack(p.text.substr(p.haystack_begin, p.haystack_end - p.haystack_begin));
    int before = -1, lines = 0;
    for (std::string line; std::getline(haystack, line);) {
      if (line == needle_sentence(*target)) before = lines;
      if (line.rfind("One of the special magic numbers for ", 0) != 0) lines++;
    }
    ASSERT_GE(before, 0);
    EXPECT_GT(lines, 20);
    EXPECT_EQ(before, std::llround(depth * lines)) << depth;
  }
}

TEST(Niah, PromptsAreDeterministicPerSeed) {
  NiahOptions o;
  o.variant = NiahVariant::MultiValue;
  NiahPrompt a = build_niah_prompt(tiny_tokenizer(), o, shakespeare_lines(), 600, 0.3, 99);
  NiahPrompt b = build_niah_prompt(tiny_tokenizer(), o, shakespeare_lines(), 600, 0.3, 99);
  NiahPrompt c = build_niah_prompt(tiny_tokenizer(), o, shakespeare_lines(), 600, 0.3, 100);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.expected, b.expected);
  EXPECT_NE(a.text, c.text);
  // The documented derivation, computed independently (Python splitmix64 chain).
  EXPECT_EQ(niah_sample_seed(0, 512, 0.5, 0), 6393936735002340373ull);
  EXPECT_EQ(niah_sample_seed(7, 1024, 0.25, 3), 13400534870241584096ull);
  EXPECT_NE(niah_sample_seed(0, 512, 0.5, 1), niah_sample_seed(0, 512, 0.5, 0));
}

TEST(Niah, RepeatedFillerHaystackAndTooShortLengths) {
  NiahOptions o;
  o.repeat_haystack = true;
  NiahPrompt p = build_niah_prompt(tiny_tokenizer(), o, {}, 500, 0.5, 3);
  EXPECT_LE(p.ids.size(), 500u);
  EXPECT_GT(p.ids.size(), 450u);
  EXPECT_GE(occurrences(p.text, "The grass is green. The sky is blue."), 5u);
  EXPECT_EQ(p.text.find("Citizen"), std::string::npos);
  EXPECT_NE(error_of([&] { build_niah_prompt(tiny_tokenizer(), o, {}, 40, 0.5, 3); }).find("shorter than the prompt"),
            std::string::npos);
}

// ---------------------------------------------------------------- streaming perplexity

class TinyModelTask : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_cpu_backend();
    model_ = load_model(tiny_dir(), *backend_, 1024);
    ids_ = tiny_tokenizer().encode(testing::read_file(shakespeare()).substr(0, 400), true);
    ids_.resize(64);
  }
  std::unique_ptr<Backend> backend_;
  LoadedModel model_;
  std::vector<int32_t> ids_;
};

TEST_F(TinyModelTask, StreamingNllEqualsOneForwardPassWithTheFullCache) {
  Transformer& m = *model_.model;
  KVCache cache = m.new_cache(int(ids_.size()));
  std::vector<int32_t> positions(ids_.size());
  for (size_t i = 0; i < positions.size(); i++) positions[i] = int32_t(i);
  std::vector<float> logits = m.backend().to_host_f32(m.forward(ids_, positions, cache, Logits::All));
  const size_t vocab = size_t(m.config().vocab_size);
  ASSERT_EQ(logits.size(), ids_.size() * vocab);

  RunStats stats;
  StreamingNll s = streaming_nll(m, CacheSpec{}, ids_, stats);
  ASSERT_EQ(s.nll.size(), ids_.size() - 1);
  for (size_t i = 0; i + 1 < ids_.size(); i++) {
    const float* row = logits.data() + i * vocab;
    double z = 0;
    for (size_t v = 0; v < vocab; v++) z += std::exp(double(row[v]));
    const double direct = std::log(z) - double(row[ids_[i + 1]]);
    EXPECT_NEAR(s.nll[i], direct, 1e-4) << i;
  }
  // Full cache: the kept bytes grow by one token per step.
  EXPECT_LT(s.kv_bytes.front(), s.kv_bytes.back());
  json j = stats.to_json();
  EXPECT_EQ(j["decode_tokens"], ids_.size() - 2);
  EXPECT_EQ(j["kv_cache"]["end"]["kv_bytes"], s.kv_bytes.back());
  EXPECT_EQ(j["kv_cache"]["peak"]["k_bytes"].get<size_t>() * 2, s.kv_bytes.back());
}

TEST_F(TinyModelTask, BoundedCacheMatchesUntilItEvictsThenStaysFlat) {
  Transformer& m = *model_.model;
  RunStats full_stats, bounded_stats;
  StreamingNll full = streaming_nll(m, CacheSpec{}, ids_, full_stats);
  CacheSpec spec;
  spec.policy = "streaming";
  spec.budget = "16";
  StreamingNll bounded = streaming_nll(m, spec, ids_, bounded_stats);
  // Predictions made while the cache still holds every token are those of the full cache.
  for (size_t i = 0; i < 16; i++) EXPECT_NEAR(bounded.nll[i], full.nll[i], 1e-4) << i;
  double differ = 0;
  for (size_t i = 16; i < full.nll.size(); i++) differ = std::max(differ, std::abs(bounded.nll[i] - full.nll[i]));
  EXPECT_GT(differ, 1e-3);  // evicting changes later predictions
  for (size_t i = 16; i < bounded.kv_bytes.size(); i++) EXPECT_EQ(bounded.kv_bytes[i], bounded.kv_bytes[15]) << i;
  EXPECT_LT(bounded.kv_bytes.back(), full.kv_bytes.back());
}

TEST(Perplexity, WindowsAverageTheirOwnPredictions) {
  StreamingNll s;
  for (int i = 0; i < 25; i++) {
    s.nll.push_back(0.1 * i);
    s.kv_bytes.push_back(size_t(100 + i));
  }
  json w = perplexity_windows(s, 10);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0]["first_token"], 1);
  EXPECT_EQ(w[2]["first_token"], 21);
  EXPECT_EQ(w[2]["tokens"], 5);
  EXPECT_NEAR(w[0]["ppl"].get<double>(), std::exp(0.45), 1e-12);  // mean of 0.0 .. 0.9
  EXPECT_NEAR(w[2]["ppl"].get<double>(), std::exp(2.2), 1e-12);   // mean of 2.0 .. 2.4
  EXPECT_EQ(w[1]["kv_bytes_kept"], 119);
  EXPECT_NEAR(token_nll({0.0f, 0.0f}, 1), std::log(2.0), 1e-12);
}

// ---------------------------------------------------------------- QA prompts

QaExample qa_example(const std::string& context) {
  QaExample ex;
  ex.id = "t";
  ex.context = context;
  ex.question = "Which word comes last?";
  ex.answers = {"w199"};
  return ex;
}

TEST(QaPrompt, RawChatAndMiddleTruncation) {
  const Tokenizer& tok = tiny_tokenizer();
  std::string words;
  for (int i = 0; i < 200; i++) {
    char w[8];
    std::snprintf(w, sizeof w, "w%03d ", i);
    words += w;
  }
  QaExample ex = qa_example(words);
  auto raw = build_qa_prompt(tok, ex, false, 100000, true);
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->context_tokens_dropped, 0);
  EXPECT_EQ(tok.decode(raw->ids), "<|begin_of_text|>" + qa_prompt_text(ex.context, ex.question));
  EXPECT_EQ(qa_prompt_text("C", "Q?"), "Answer the question based on the text below. Give only the answer, in as "
                                       "few words as possible.\n\nC\n\nQuestion: Q?\nAnswer:");

  auto chat = build_qa_prompt(tok, ex, true, 100000, true);
  ASSERT_TRUE(chat);
  std::string text = tok.decode(chat->ids);
  EXPECT_EQ(text.rfind("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n", 0), 0u) << text;
  EXPECT_EQ(std::count(chat->ids.begin(), chat->ids.end(), *tok.bos_id()), 1);

  auto cut = build_qa_prompt(tok, ex, false, 300, true);
  ASSERT_TRUE(cut);
  EXPECT_LE(cut->ids.size(), 300u);
  EXPECT_GT(cut->ids.size(), 280u);
  EXPECT_GT(cut->context_tokens_dropped, 0);
  text = tok.decode(cut->ids);
  EXPECT_NE(text.find("w000 w001"), std::string::npos);  // the first half stays
  EXPECT_NE(text.find("w198 w199"), std::string::npos);  // and the last
  EXPECT_EQ(text.find("w100"), std::string::npos);       // the middle goes
  EXPECT_NE(text.find("Question: Which word comes last?\nAnswer:"), std::string::npos);

  EXPECT_FALSE(build_qa_prompt(tok, ex, false, 300, false));  // no truncation: too long
  EXPECT_FALSE(build_qa_prompt(tok, ex, false, 20, true));    // not even the template fits
}

// A template of the user's (LongBench's narrativeqa style, question before and after the
// context): filled in one pass, truncated in its context's middle like the default one.
TEST(QaPrompt, TemplateOfTheUsers) {
  const std::string t = "Story: {context}\n\nQuestion: {input}\nAgain: {question} {braces stay}\nAnswer:";
  EXPECT_EQ(qa_prompt_text(t, "a {question} in the text", "Q?"),
            "Story: a {question} in the text\n\nQuestion: Q?\nAgain: Q? {braces stay}\nAnswer:");
  EXPECT_EQ(qa_prompt_text("", "C", "Q?"), qa_prompt_text("C", "Q?"));
  check_qa_template(t);
  check_qa_template("");
  EXPECT_NE(testing::error_of([] { check_qa_template("Question: {question}"); }).find("{context} exactly once"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] { check_qa_template("{context} {context}"); }).find("2 times"), std::string::npos);

  const Tokenizer& tok = tiny_tokenizer();
  std::string words;
  for (int i = 0; i < 200; i++) words += "w" + std::to_string(1000 + i) + " ";
  const QaExample ex = qa_example(words);
  auto cut = build_qa_prompt(tok, ex, false, 300, true, t);
  ASSERT_TRUE(cut);
  EXPECT_LE(cut->ids.size(), 300u);
  const std::string text = tok.decode(cut->ids);
  EXPECT_EQ(text.rfind("<|begin_of_text|>Story: w1000 w1001", 0), 0u) << text;
  EXPECT_EQ(text.find("w1100"), std::string::npos);
  EXPECT_NE(text.find("w1199 \n\nQuestion: Which word comes last?\nAgain: Which word comes last? {braces stay}"),
            std::string::npos)
      << text;
}

TEST(QaPrompt, TaskTypeChoosesTheScore) {
  QaExample ex = qa_example("c");
  ex.answers = {"a grave man"};
  // [man grave indeed] vs [grave man]: F1 = 2 * (2/3 * 1) / (2/3 + 1) = 0.8; LCS 1: P 1/3, R 1/2, F = 0.4.
  for (auto [type, want] : std::vector<std::pair<std::string, double>>{
           {"qa", 0.8}, {"em", 0.0}, {"rouge", 0.4}, {"accuracy", 0.0}, {"classification", 0.0}}) {
    ex.task_type = type;
    EXPECT_NEAR(score_qa("Man, a grave indeed", ex).score, want, 1e-12) << type;
  }
  ex.task_type = "accuracy";
  EXPECT_EQ(score_qa("He is a grave man.", ex).score, 1.0);
  ex.task_type = "em";
  EXPECT_EQ(score_qa("The grave man", ex).score, 1.0);
}

TEST_F(TinyModelTask, QaRefusesOrSkipsTooLongLinesWithoutTruncation) {
  ModelConfig config = load_model_config(tiny_dir());
  CacheSpec cache;
  TaskOptionSources s;
  s.flags = {{"data", example_qa()}, {"truncation", "none"}, {"max_length", "300"}, {"max_new_tokens", "4"}};
  const TaskInfo& qa = find_task("qa");
  std::string err = error_of([&] { qa.prepare(resolve_task_options(qa, s), {tiny_tokenizer(), config, cache, 0}); });
  EXPECT_NE(err.find(example_qa() + ":"), std::string::npos) << err;
  EXPECT_NE(err.find("longer than 300 tokens"), std::string::npos) << err;

  s.flags["skip_bad_lines"] = "true";
  PreparedTask t = qa.prepare(resolve_task_options(qa, s), {tiny_tokenizer(), config, cache, 0});
  EXPECT_LE(t.context_tokens, 304);
  TaskResult r = t.run(*model_.model);
  const int skipped = r.metrics["skipped"]["count"].get<int>();
  EXPECT_GT(skipped, 0);
  EXPECT_EQ(r.metrics["skipped"]["by_kind"]["too long"], skipped);
  EXPECT_EQ(r.metrics["examples"].get<int>() + skipped, int(load_qa_jsonl(example_qa(), false).examples.size()));
  for (const json& row : r.metrics["per_example"]) EXPECT_LE(row["prompt_tokens"].get<int>(), 300);
}

// ---------------------------------------------------------------- kvlab-eval end to end

struct EvalRun {
  testing::CommandResult result;
  json report;
};

EvalRun eval(const std::string& flags) {
  std::string out = testing::temp_dir() + "/report.json";
  EvalRun r{run_command(testing::bin_dir() + "/kvlab-eval --model " + testing::source_dir() +
                            "/datasets/models/tiny-random-llama --out " + out + " " + flags),
            json()};
  if (std::filesystem::exists(out)) r.report = json::parse(testing::read_file(out));
  return r;
}

// What every task records, whatever it scores.
void expect_common_metrics(const json& m) {
  for (const char* k : {"ttft_s_mean", "decode_tokens_per_s", "token_latency_s_p50", "token_latency_s_p99"})
    EXPECT_GT(m[k].get<double>(), 0.0) << k;
  EXPECT_GT(m["host_memory_peak_bytes"].get<size_t>(), 0u);
  const json& kv = m["kv_cache"];
  EXPECT_GT(m["backend_memory_peak_bytes"].get<size_t>(), kv["allocated_bytes_peak"].get<size_t>())
      << "the weights and the KV store are held at once";
  for (const char* when : {"peak", "end"}) {
    EXPECT_GT(kv[when]["kv_bytes"].get<size_t>(), 0u) << when;
    EXPECT_EQ(kv[when]["k_bytes"].get<size_t>() + kv[when]["v_bytes"].get<size_t>(), kv[when]["kv_bytes"].get<size_t>());
    EXPECT_EQ(kv[when]["k_bytes_per_layer"].size(), 3u);  // the tiny model's layers
  }
  EXPECT_GE(kv["peak"]["kv_bytes"].get<size_t>(), kv["end"]["kv_bytes"].get<size_t>());
  EXPECT_GE(kv["allocated_bytes_peak"].get<size_t>(), kv["peak"]["kv_bytes"].get<size_t>());
}

TEST(EvalTasks, QaOnTheExampleDataset) {
  EvalRun r = eval("--task qa --max-new-tokens 8");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.err;
  EXPECT_NE(r.result.out.find("qa: score"), std::string::npos) << r.result.out;
  const json& m = r.report["metrics"];
  const size_t n = load_qa_jsonl(example_qa(), false).examples.size();
  EXPECT_EQ(m["examples"], n);
  EXPECT_EQ(m["per_example"].size(), n);
  EXPECT_EQ(m["skipped"]["count"], 0);
  EXPECT_GT(m["truncated"].get<int>(), 0);  // the example's long line does not fit the tiny model
  for (const char* k : {"score", "em", "f1", "rouge_l", "accuracy"}) {
    EXPECT_GE(m[k].get<double>(), 0.0) << k;
    EXPECT_LE(m[k].get<double>(), 1.0) << k;
  }
  EXPECT_EQ(m["by_task_type"].size(), 5u);
  expect_common_metrics(m);
  EXPECT_EQ(r.report["inputs"]["datasets"][example_qa()].get<std::string>().size(), 64u);
  EXPECT_EQ(r.report["config"]["qa"]["max_length"], 1024 - 8);
}

TEST(EvalTasks, QaBadLineStopsTheRunOrIsSkipped) {
  std::string data = testing::temp_dir() + "/bad.jsonl";
  testing::write_file(data, std::string(R"({"id": "1", "context": "c d e", "question": "q", "answers": ["d"]})") +
                                "\n{\"id\": \"2\", \"context\": 5}\n");
  EvalRun r = eval("--task qa --max-new-tokens 2 --data " + data);
  EXPECT_EQ(r.result.exit_code, 2);
  EXPECT_EQ(std::count(r.result.err.begin(), r.result.err.end(), '\n'), 1) << r.result.err;
  EXPECT_NE(r.result.err.find(data + ":2: "), std::string::npos) << r.result.err;
  EXPECT_TRUE(r.report.is_null());
  r = eval("--task qa --max-new-tokens 2 --skip-bad-lines --data " + data);
  ASSERT_EQ(r.result.exit_code, 0) << r.result.err;
  EXPECT_EQ(r.report["metrics"]["examples"], 1);
  EXPECT_EQ(r.report["metrics"]["skipped"]["count"], 1);
  EXPECT_EQ(r.report["metrics"]["skipped"]["by_kind"]["wrong type"], 1);
  EXPECT_EQ(r.report["metrics"]["skipped"]["lines"][0]["line"], 2);
}

TEST(EvalTasks, NiahOnTheTinyModel) {
  EvalRun r = eval("--task niah --variant multivalue --needles 2 --lengths 300,400 --depths 0,1 --samples 1 --seed 5");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.err;
  const json& m = r.report["metrics"];
  EXPECT_EQ(m["samples"], 4);
  EXPECT_EQ(m["variant"], "multivalue");
  EXPECT_EQ(m["cells"].size(), 4u);
  EXPECT_EQ(m["by_length"].size(), 2u);
  EXPECT_EQ(m["by_depth"].size(), 2u);
  for (const json& s : m["per_sample"]) {
    EXPECT_LE(s["prompt_tokens"].get<int>(), s["length"].get<int>());
    EXPECT_EQ(s["expected"].size(), 2u);
    EXPECT_LE(s["generated_tokens"].get<int>(), 32);
    EXPECT_EQ(s["seed"], niah_sample_seed(5, s["length"], s["depth"], 0));
  }
  expect_common_metrics(m);
  // Same flags, same report numbers that do not depend on time.
  EvalRun again = eval("--task niah --variant multivalue --needles 2 --lengths 300,400 --depths 0,1 --samples 1 --seed 5");
  ASSERT_EQ(again.result.exit_code, 0) << again.result.err;
  for (size_t i = 0; i < m["per_sample"].size(); i++)
    for (const char* k : {"prompt_tokens", "expected", "answer"})
      EXPECT_EQ(again.report["metrics"]["per_sample"][i][k], m["per_sample"][i][k]) << k;
}

TEST(EvalTasks, PerplexityKeepsMemoryFlatUnderABoundedCache) {
  EvalRun r = eval("--task perplexity --max-tokens 1500 --window 250 --cache streaming --budget 64 --interval 1");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.err;
  const json& m = r.report["metrics"];
  EXPECT_EQ(m["tokens"], 1500);
  EXPECT_EQ(m["predicted_tokens"], 1499);
  EXPECT_GT(m["tokens_past_trained_context"].get<int>(), 0);  // the tiny model is trained to 1024
  ASSERT_EQ(m["windows"].size(), 6u);
  for (const json& w : m["windows"]) {
    EXPECT_EQ(w["kv_bytes_kept"], m["windows"][0]["kv_bytes_kept"]);
    EXPECT_GT(w["ppl"].get<double>(), 1.0);
  }
  EXPECT_NEAR(m["ppl"].get<double>(), std::exp(m["nll_mean"].get<double>()), 1e-9);
  expect_common_metrics(m);
  EXPECT_LT(r.report["memory"]["context_tokens"].get<int>(), 100);  // the plan sizes the bounded store
}

// Perplexity reads every prompt token's logits: the memory plan counts a chunk of them (0.5 GiB
// at Llama-3.1-8B's vocabulary), and it bounds what the backend held.
TEST(EvalTasks, PerplexityPlansAChunkOfLogits) {
  EvalRun r = eval("--task perplexity --max-tokens 600 --window 200");
  ASSERT_EQ(r.result.exit_code, 0) << r.result.err;
  const json& memory = r.report["memory"];
  const ModelConfig c = load_model_config(testing::source_dir() + "/datasets/models/tiny-random-llama");
  auto plan = [&](bool all_logits) {
    return plan_memory(c, memory["context_tokens"].get<int>(), kDefaultPrefillChunk,
                       {DType::F32, DType::F32, DType::F32}, all_logits);
  };
  EXPECT_EQ(memory["workspace_bytes"].get<size_t>(), plan(true).workspace_bytes);
  EXPECT_EQ(plan(true).workspace_bytes - plan(false).workspace_bytes,
            size_t(kDefaultPrefillChunk) * size_t(c.vocab_size) * 4);
  EXPECT_LE(r.report["metrics"]["backend_memory_peak_bytes"].get<size_t>(), memory["total_bytes"].get<size_t>());
}

TEST(EvalTasks, ConfigFilesCarryTaskOptions) {
  for (const char* c : {"niah", "perplexity", "qa_example"}) {
    json cfg = json::parse(testing::read_file(testing::source_dir() + "/configs/" + c + ".json"));
    EXPECT_NO_THROW(resolve_task_options(find_task(cfg["task"]), [&] {
      TaskOptionSources s;
      for (auto& [k, v] : cfg.items())
        if (k != "model" && k != "task" && k != "backend" && k != "out" && k != "cache" && k != "budget") s.config[k] = v;
      return s;
    }())) << c;
  }
  std::string cfg = testing::temp_dir() + "/ppl.json";
  testing::write_file(cfg, R"({"task": "perplexity", "max_tokens": 300, "window": 100, "lengths": [256]})");
  EvalRun r = eval("--config " + cfg);
  EXPECT_EQ(r.result.exit_code, 2);
  EXPECT_NE(r.result.err.find("key \"lengths\" does not apply to task perplexity"), std::string::npos) << r.result.err;
  testing::write_file(cfg, R"({"task": "perplexity", "max_tokens": 300, "window": 100})");
  r = eval("--config " + cfg);
  ASSERT_EQ(r.result.exit_code, 0) << r.result.err;
  EXPECT_EQ(r.report["metrics"]["windows"].size(), 3u);
  r = eval("--task niah --window 5");
  EXPECT_EQ(r.result.exit_code, 2);
  EXPECT_NE(r.result.err.find("--window does not apply to task niah"), std::string::npos) << r.result.err;
}

TEST(EvalTasks, HelpTasksDescribesEveryTask) {
  auto r = run_command(testing::bin_dir() + "/kvlab-eval --help-tasks");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(tasks_help()), std::string::npos);
  for (const TaskInfo& t : tasks()) EXPECT_NE(r.out.find(t.name + ": "), std::string::npos) << t.name;
}

}  // namespace
}  // namespace kvlab
