// The QA JSON Lines loader: every kind of bad line is an error naming file:line, or with
// skipping on, a counted skip; good lines come through exactly.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tasks/jsonl_dataset.h"
#include "test_support.h"

namespace kvlab {
namespace {

const char* kGood = R"({"id": "g1", "context": "Romeo loves Juliet.", "question": "Whom does Romeo love?", "answers": ["Juliet"]})";

std::string write_dataset(const std::string& content) {
  std::string path = testing::temp_dir() + "/data.jsonl";
  testing::write_file(path, content);
  return path;
}

// The message of the Error load_qa_jsonl throws, or "" when it does not throw.
std::string load_error(const std::string& path) {
  try {
    load_qa_jsonl(path, false);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitBadInput);
    return e.what();
  }
  return "";
}

TEST(JsonlDataset, ReadsFieldsBlankLinesCrlfAndBom) {
  std::string path = write_dataset(
      "\xEF\xBB\xBF" + std::string(kGood) + "\r\n\n   \n" +
      R"({"id": "g2", "context": "c", "question": "q?", "answers": ["x", "y z"], "task_type": "rouge", "chat": true, "meta": {"source": "me"}})" +
      "\n" + R"({"id": "g3", "context": "ü", "question": "q", "answers": ["Ä"], "task_type": "classification"})");
  QaDataset d = load_qa_jsonl(path, false);
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.lines, 5);
  EXPECT_TRUE(d.skipped.empty());
  EXPECT_EQ(d.examples[0].id, "g1");
  EXPECT_EQ(d.examples[0].context, "Romeo loves Juliet.");
  EXPECT_EQ(d.examples[0].task_type, "qa");
  EXPECT_FALSE(d.examples[0].chat.has_value());
  EXPECT_EQ(d.examples[0].line, 1);
  EXPECT_EQ(d.examples[1].answers, (std::vector<std::string>{"x", "y z"}));
  EXPECT_EQ(d.examples[1].task_type, "rouge");
  EXPECT_EQ(d.examples[1].chat, std::optional<bool>(true));
  EXPECT_EQ(d.examples[1].line, 4);
  EXPECT_EQ(d.examples[2].line, 5);
  EXPECT_EQ(d.examples[2].task_type, "classification");
}

struct BadCase {
  std::string line;
  std::string kind;
  std::string mention;
};

const std::vector<BadCase>& bad_cases() {
  static const std::vector<BadCase> cases = {
      {R"({"id": "b", "context": "c", "question": )", "malformed JSON", "malformed JSON"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": ["x"]} trailing)", "malformed JSON", "malformed JSON"},
      {R"(["not", "an", "object"])", "not an object", "expected a JSON object, got array"},
      {R"({"id": "b", "context": "c", "answers": ["x"]})", "missing field", "missing field \"question\""},
      {R"({"id": "b", "context": "c", "question": "q"})", "missing field", "missing field \"answers\""},
      {R"({"context": "c", "question": "q", "answers": ["x"]})", "missing field", "missing field \"id\""},
      {R"({"id": 7, "context": "c", "question": "q", "answers": ["x"]})", "wrong type", "\"id\" must be a string, got number"},
      {R"({"id": "b", "context": ["c"], "question": "q", "answers": ["x"]})", "wrong type", "\"context\" must be a string"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": "Paris"})", "wrong type", "\"answers\" must be an array"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": ["x", 1]})", "wrong type", "answers[1] must be a string"},
      {R"({"id": "b", "context": "", "question": "q", "answers": ["x"]})", "empty field", "\"context\" is empty"},
      {R"({"id": "b", "context": " \t ", "question": "q", "answers": ["x"]})", "empty field", "\"context\" is empty"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": []})", "empty field", "empty array"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": ["The"]})", "empty field", "empty after normalization"},
      {"{\"id\": \"b\", \"context\": \"caf\xE9\", \"question\": \"q\", \"answers\": [\"a\"]}", "invalid UTF-8",
       "not valid UTF-8"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": ["x"], "task_type": "bleu"})", "bad value",
       "\"bleu\" is not one of"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": ["x"], "task_type": 3})", "wrong type",
       "\"task_type\" must be a string"},
      {R"({"id": "b", "context": "c", "question": "q", "answers": ["x"], "chat": "yes"})", "wrong type",
       "\"chat\" must be true or false"},
      {R"({"id": "b", "context": "c", "question": "q", "answer": ["a"]})", "unknown field", "unknown field \"answer\""},
      {R"({"id": "g1", "context": "c", "question": "q", "answers": ["x"]})", "duplicate id", "already used on line 1"},
  };
  return cases;
}

TEST(JsonlDataset, EveryBadLineIsAnErrorNamingFileAndLine) {
  for (const BadCase& c : bad_cases()) {
    std::string path = write_dataset(std::string(kGood) + "\n" + c.line + "\n");
    std::string err = load_error(path);
    EXPECT_NE(err.find(path + ":2: "), std::string::npos) << c.line << "\n" << err;
    EXPECT_NE(err.find(c.mention), std::string::npos) << c.line << "\n" << err;
  }
}

TEST(JsonlDataset, SkippingCountsEveryBadLineByKind) {
  std::string content = std::string(kGood) + "\n";
  for (const BadCase& c : bad_cases()) content += c.line + "\n";
  content += R"({"id": "g9", "context": "c", "question": "q", "answers": ["x"]})";
  QaDataset d = load_qa_jsonl(write_dataset(content), true);
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.examples[1].id, "g9");
  EXPECT_EQ(d.examples[1].line, int(bad_cases().size()) + 2);
  ASSERT_EQ(d.skipped.size(), bad_cases().size());
  std::map<std::string, int> want;
  for (size_t i = 0; i < bad_cases().size(); i++) {
    EXPECT_EQ(d.skipped[i].line, int(i) + 2);
    EXPECT_EQ(d.skipped[i].kind, bad_cases()[i].kind) << bad_cases()[i].line;
    want[bad_cases()[i].kind]++;
  }
  nlohmann::json j = skipped_json(d.skipped);
  EXPECT_EQ(j["count"], bad_cases().size());
  for (auto& [kind, n] : want) EXPECT_EQ(j["by_kind"][kind], n) << kind;
  EXPECT_EQ(j["lines"].size(), bad_cases().size());
}

TEST(JsonlDataset, NothingUsableIsAnError) {
  std::string path = write_dataset("{}\n[]\n");
  try {
    load_qa_jsonl(path, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no usable examples"), std::string::npos) << e.what();
  }
  EXPECT_NE(load_error(write_dataset("\n\n")).find("no usable examples"), std::string::npos);
  EXPECT_NE(load_error(write_dataset("")).find("empty"), std::string::npos);
  std::string missing = testing::temp_dir() + "/absent.jsonl";
  EXPECT_NE(load_error(missing).find(missing + ": cannot open"), std::string::npos);
}

TEST(JsonlDataset, LoadsTheShippedExample) {
  QaDataset d = load_qa_jsonl(testing::source_dir() + "/datasets/qa/example.jsonl", false);
  EXPECT_GE(d.examples.size(), 10u);
  EXPECT_TRUE(d.skipped.empty());
}

TEST(JsonlDataset, ManyLinesLoadFast) {
  std::string content;
  for (int i = 0; i < 20000; i++)
    content += R"({"id": "e)" + std::to_string(i) + R"(", "context": "Some context text here.", "question": "q?", "answers": ["a b"]})" + "\n";
  std::string path = write_dataset(content);
  auto t0 = std::chrono::steady_clock::now();
  QaDataset d = load_qa_jsonl(path, false);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(d.examples.size(), 20000u);
  EXPECT_LT(s, 5.0);  // generous: sanitizer builds are slow; a release build takes a fraction of this
}

}  // namespace
}  // namespace kvlab
