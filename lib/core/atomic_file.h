#pragma once
// Results are never half-written: content goes to a temporary file beside the target,
// is flushed to disk, then renamed over it.
#include <string>

namespace kvlab {

void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace kvlab
