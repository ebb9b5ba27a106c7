#include "tasks/jsonl_dataset.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/byte_level.h"
#include "tasks/metrics.h"
#include "tasks/text_file.h"

namespace kvlab {

namespace {

const std::string kTaskTypes[] = {"qa", "em", "rouge", "accuracy", "classification"};
const std::string kFields[] = {"id", "context", "question", "answers", "task_type", "chat", "meta"};

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

std::string json_error_text(const nlohmann::json::exception& e) {
  std::string what = e.what();
  size_t start = what.find("] ");  // drop "[json.exception.parse_error.101] "
  return start == std::string::npos ? what : what.substr(start + 2);
}

// The example of one line, or the first problem with it.
std::optional<BadLine> parse_example(std::string_view text, int line, QaExample& ex) {
  auto bad = [line](const char* kind, std::string detail) { return BadLine{line, kind, std::move(detail)}; };
  auto wrong_type = [&](const std::string& what, const char* expected, const nlohmann::json& v) {
    return bad("wrong type", what + " must be " + expected + ", got " + v.type_name());
  };
  if (auto at = find_invalid_utf8(text))
    return bad("invalid UTF-8", "not valid UTF-8 at byte " + std::to_string(*at + 1) + " of the line");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return bad("malformed JSON", "malformed JSON: " + json_error_text(e));
  }
  if (!j.is_object()) return bad("not an object", std::string("expected a JSON object, got ") + j.type_name());
  for (auto& [key, value] : j.items())
    if (std::find(std::begin(kFields), std::end(kFields), key) == std::end(kFields))
      return bad("unknown field",
                 "unknown field \"" + key + "\" (fields: id, context, question, answers, task_type, chat, meta)");
  for (auto [name, out] : {std::pair{"id", &ex.id}, {"context", &ex.context}, {"question", &ex.question}}) {
    const std::string what = std::string("field \"") + name + "\"";
    if (!j.contains(name)) return bad("missing field", "missing " + what);
    if (!j[name].is_string()) return wrong_type(what, "a string", j[name]);
    *out = j[name].get<std::string>();
    if (blank(*out)) return bad("empty field", what + " is empty");
  }
  if (!j.contains("answers")) return bad("missing field", "missing field \"answers\"");
  const nlohmann::json& answers = j["answers"];
  if (!answers.is_array()) return wrong_type("field \"answers\"", "an array of strings", answers);
  if (answers.empty()) return bad("empty field", "field \"answers\" is an empty array");
  for (size_t i = 0; i < answers.size(); i++) {
    const std::string what = "answers[" + std::to_string(i) + "]";
    if (!answers[i].is_string()) return wrong_type(what, "a string", answers[i]);
    // An answer that normalizes to nothing would match any prediction: refuse it.
    if (normalize_answer(answers[i].get<std::string>()).empty())
      return bad("empty field", what + " " + answers[i].dump() + " is empty after normalization");
    ex.answers.push_back(answers[i].get<std::string>());
  }
  if (j.contains("task_type")) {
    const nlohmann::json& t = j["task_type"];
    if (!t.is_string()) return wrong_type("field \"task_type\"", "a string", t);
    if (std::find(std::begin(kTaskTypes), std::end(kTaskTypes), t.get<std::string>()) == std::end(kTaskTypes))
      return bad("bad value", "task_type " + t.dump() + " is not one of: qa, em, rouge, accuracy, classification");
    ex.task_type = t.get<std::string>();
  }
  if (j.contains("chat")) {
    if (!j["chat"].is_boolean()) return wrong_type("field \"chat\"", "true or false", j["chat"]);
    ex.chat = j["chat"].get<bool>();
  }
  ex.line = line;
  return std::nullopt;
}

}  // namespace

void reject_line(QaDataset& d, BadLine bad, bool skip_bad_lines) {
  if (!skip_bad_lines)
    fail(d.path + ":" + std::to_string(bad.line) + ": " + bad.detail + " (--skip-bad-lines skips such lines)");
  d.skipped.push_back(std::move(bad));
}

QaDataset load_qa_jsonl(const std::string& path, bool skip_bad_lines) {
  QaDataset d;
  d.path = path;
  const std::string bytes = read_file_bytes(path, "QA dataset");
  std::string_view rest(bytes);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);
  std::map<std::string, int> id_lines;
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    std::string_view text = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    const int line = ++d.lines;
    if (blank(text)) continue;
    QaExample ex;
    std::optional<BadLine> bad = parse_example(text, line, ex);
    if (!bad) {
      auto [it, fresh] = id_lines.emplace(ex.id, line);
      if (!fresh)
        bad = BadLine{line, "duplicate id",
                      "id \"" + ex.id + "\" is already used on line " + std::to_string(it->second)};
    }
    if (bad) {
      reject_line(d, std::move(*bad), skip_bad_lines);
      continue;
    }
    d.examples.push_back(std::move(ex));
  }
  if (d.examples.empty())
    fail(path + ": no usable examples (" + std::to_string(d.lines) + " lines, " + std::to_string(d.skipped.size()) +
         " skipped)");
  return d;
}

nlohmann::json skipped_json(const std::vector<BadLine>& skipped) {
  nlohmann::json by_kind = nlohmann::json::object(), lines = nlohmann::json::array();
  for (const BadLine& b : skipped) {
    by_kind[b.kind] = by_kind.value(b.kind, 0) + 1;
    if (lines.size() < 100) lines.push_back({{"line", b.line}, {"kind", b.kind}, {"detail", b.detail}});
  }
  return {{"count", skipped.size()}, {"by_kind", by_kind}, {"lines", lines}};
}

}  // namespace kvlab
