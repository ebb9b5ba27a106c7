#include "tasks/text_file.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/byte_level.h"

namespace kvlab {

std::string read_file_bytes(const std::string& path, const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path + ": cannot open " + what + " file");
  std::ostringstream bytes;
  bytes << f.rdbuf();
  if (f.bad()) fail(path + ": error reading " + what + " file");
  std::string text = bytes.str();
  if (text.empty()) fail(path + ": " + what + " file is empty");
  return text;
}

std::string read_text_file(const std::string& path, const std::string& what) {
  std::string text = read_file_bytes(path, what);
  if (auto bad = find_invalid_utf8(text))
    fail(path + ":" + std::to_string(line_of(text, *bad)) + ": not valid UTF-8 (byte offset " + std::to_string(*bad) +
         " of the " + what + " file)");
  return text;
}

int line_of(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + int(std::count(text.begin(), text.begin() + std::ptrdiff_t(offset), '\n'));
}

}  // namespace kvlab
