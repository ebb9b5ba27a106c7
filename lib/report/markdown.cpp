#include "report/markdown.h"

#include <algorithm>
#include <filesystem>

#include "report/fields.h"
#include "report/summary.h"

namespace kvlab {

namespace {

std::string cell(std::string text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c == '\n' ? ' ' : c);
  return out;
}

}  // namespace

std::string summary_markdown(const Summary& s) {
  std::string md = "# " + s.options.title + "\n\n";
  size_t runs = s.rows.size();
  md += std::to_string(runs) + " runs from ";
  for (size_t i = 0; i < s.sources.size(); i++)
    md += (i ? ", " : "") + std::string("`") + std::filesystem::path(s.sources[i].path).filename().string() + "`";
  md += ". Objective: " + s.options.objective;
  std::string constraints;
  for (const Constraint& c : s.options.constraints) constraints += (constraints.empty() ? "" : " and ") + c.describe();
  md += constraints.empty() ? "; no constraint.\n\n" : "; constraint: " + constraints + ".\n\n";
  md += "## Verdict\n\n";
  for (const TaskVerdict& t : s.tasks) md += "- " + t.verdict + "\n";
  for (const TaskVerdict& t : s.tasks) {
    md += "\n## " + t.task + "\n\n";
    const std::string metric =
        s.rows[t.rows[0]].quality_metric == "ppl" ? "perplexity" : s.rows[t.rows[0]].quality_metric;
    md += "Ranked by " + t.objective_title + " (" + (t.higher_is_better ? "higher" : "lower") +
          " is better); runs that miss the constraint come last. Pareto ★: no run of " + t.task +
          " keeps less KV cache at peak with a better " + metric + ".\n\n";
    md += "| run | model | method | settings | context | " + metric +
          " | KV at peak | decode tok/s | TTFT | meets | Pareto |\n";
    md += "|---|---|---|---|---:|---:|---:|---:|---:|:-:|:-:|\n";
    std::vector<size_t> order = t.ranked;
    for (size_t i : t.rows)
      if (std::find(order.begin(), order.end(), i) == order.end()) order.push_back(i);
    for (size_t i : order) {
      const RunRow& r = s.rows[i];
      md += "| `" + r.id + "` | " + cell(r.model) + " | " + cell(r.method) + " | " +
            cell(s.settings[i].empty() ? "-" : s.settings[i]) + " | " + formatted(r, "context_tokens") + " | " +
            formatted(r, "quality") + " | " + formatted(r, "kv_bytes") + " | " + formatted(r, "decode_tokens_per_s") +
            " | " + formatted(r, "ttft_s") + " | " + (s.meets[i] ? "yes" : "no") + " | " + (s.on_pareto[i] ? "★" : "") +
            " |\n";
    }
  }
  return md;
}

}  // namespace kvlab
