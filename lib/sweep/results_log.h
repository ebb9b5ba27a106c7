#pragma once
// Append-only JSON Lines files that several processes write (results.jsonl, failures.jsonl).
// Each record is one line, written by write() calls made under an exclusive flock on the file
// and fsynced before the lock is released: regular files promise no atomicity for concurrent
// O_APPEND writes, the lock does. A writer killed mid-line (kill -9) leaves a torn last line
// without its newline; the next append cuts it off before writing, and readers skip it.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kvlab {

// Appends `line` (one JSON document, no newline) and a newline. Error when it cannot be written
// in full, after cutting the partial line back off.
void append_jsonl(const std::string& path, const std::string& line);
// Cuts a torn last line off `path` under the lock; returns the bytes removed (0 when none or no file).
size_t repair_jsonl_tail(const std::string& path);

struct JsonlContent {
  std::vector<nlohmann::json> records;  // every complete line, in order
  std::vector<size_t> line_numbers;     // 1-based, per record
  size_t torn_bytes = 0;                // bytes after the last newline (a torn line), skipped
};
// Reads every complete line of `path` (an absent file has none). A complete line that is not a
// JSON object is an Error naming the file and line.
JsonlContent read_jsonl(const std::string& path);

}  // namespace kvlab
