#pragma once
// QA datasets in JSON Lines, one example per line (the format docs/tasks.md documents):
//   {"id": "...", "context": "...", "question": "...", "answers": ["...", ...],
//    "task_type": "qa" | "em" | "rouge" | "accuracy" | "classification",   (optional, default qa)
//    "chat": true | false,                                                 (optional)
//    "meta": anything}                                                     (optional, ignored)
// Every problem names the file and line; with skipping on, bad lines are counted by kind instead.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

struct QaExample {
  std::string id, context, question;
  std::vector<std::string> answers;
  std::string task_type = "qa";
  std::optional<bool> chat;  // unset: the run's --chat decides
  int line = 0;              // 1-based line of the file
};

struct BadLine {
  int line = 0;
  std::string kind;    // short and countable: "malformed JSON", "missing field", "wrong type", ...
  std::string detail;  // what exactly, naming the field
};

struct QaDataset {
  std::string path;
  std::vector<QaExample> examples;
  std::vector<BadLine> skipped;
  int lines = 0;  // lines read, blank ones included
};

// Blank lines are ignored; a UTF-8 byte-order mark at the start is dropped.
QaDataset load_qa_jsonl(const std::string& path, bool skip_bad_lines);

// Throws Error "<path>:<line>: <detail>", or (skipping) records the line as skipped.
void reject_line(QaDataset& dataset, BadLine bad, bool skip_bad_lines);

// {"count", "by_kind": {kind: n}, "lines": [{"line", "kind", "detail"}, ...]} (the first 100 lines).
nlohmann::json skipped_json(const std::vector<BadLine>& skipped);

}  // namespace kvlab
