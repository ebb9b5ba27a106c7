#pragma once
// The summary as one self-contained HTML page: inline CSS and inline SVG charts, no script and
// nothing fetched at view time. The verdict comes first, then quality against KV memory per task
// (Pareto front marked), decode speed against context length per method, KV memory over the
// tokens of continuous generation, accuracy by needle depth x length, and every run in a table.
#include <string>

namespace kvlab {

struct Summary;

std::string summary_html(const Summary& s);
// A whole page in the report's style around `body` (HTML).
std::string html_document(const std::string& title, const std::string& body);

}  // namespace kvlab
