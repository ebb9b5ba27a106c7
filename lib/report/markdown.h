#pragma once
// The summary as Markdown: the verdict per task in plain words, then per task a table of its
// runs (best first under the objective), numbers formatted as fields.h prints them.
#include <string>

namespace kvlab {

struct Summary;

std::string summary_markdown(const Summary& s);

}  // namespace kvlab
