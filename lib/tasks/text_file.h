#pragma once
// Reading the text files tasks use (haystacks, corpora, datasets) with errors that name the
// file, and the line where the bytes stop being UTF-8.
#include <cstddef>
#include <string>
#include <string_view>

namespace kvlab {

// The whole file as bytes. `what` says what the file is for ("haystack text"). Error when it
// cannot be read or is empty.
std::string read_file_bytes(const std::string& path, const std::string& what);
// read_file_bytes, then Error "<path>:<line>: not valid UTF-8 ..." at the first bad byte.
std::string read_text_file(const std::string& path, const std::string& what);
// 1-based line number of byte `offset` in `text`.
int line_of(std::string_view text, size_t offset);

}  // namespace kvlab
