// kvlab-report: a sweep's results → a kvlab.summary JSON, CSV, Markdown and one self-contained
// HTML page, with the winning configuration under the user's constraint in plain words.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_input.h"
#include "report/cache_map.h"
#include "report/csv_table.h"
#include "report/fields.h"
#include "report/html_page.h"
#include "report/markdown.h"
#include "report/results_file.h"
#include "report/summary.h"
#include "run/cli.h"
#include "tasks/text_file.h"

namespace {

namespace fs = std::filesystem;

int report_main(int argc, char** argv) {
  CLI::App app{
      "Summarize sweep results (results.jsonl files or results directories) as JSON, CSV, Markdown and a "
      "self-contained HTML page, and say which configuration wins under a constraint.",
      "kvlab-report"};
  std::vector<std::string> inputs, constraint_texts;
  std::string out, objective = "accuracy", title = "kvlab sweep report";
  std::string cache_dump;
  app.add_option("results", inputs, "results.jsonl files or sweep results directories");
  app.add_option("--cache-dump", cache_dump,
                 "Instead: draw a --dump-cache file (which positions each layer keeps) as <out>/cache_map.html "
                 "(default out: the file's directory)");
  app.add_option("--out", out, "Directory for summary.{json,csv,md,html} (default: <results dir>/report)");
  app.add_option("--constraint", constraint_texts,
                 "FIELD OP VALUE a run must meet, e.g. \"kv_bytes<=4GiB\", \"decode_tokens_per_s>=20\", "
                 "\"task=passkey\" (repeatable; all must hold; see --help-fields)");
  app.add_option("--objective", objective,
                 "What wins: accuracy (each task's own metric: accuracy, qa score, or perplexity, lower better) or "
                 "a field such as kv_bytes, decode_tokens_per_s, ttft_s");
  app.add_option("--title", title, "Title of the Markdown and HTML pages");
  app.add_flag_callback(
      "--help-fields",
      [] {
        std::printf("Fields for --constraint and --objective (text fields: model, task, policy, method, budget):\n");
        for (const kvlab::Field& f : kvlab::report_fields())
          std::printf("  %-22s %s%s\n", f.name.c_str(), f.description.c_str(),
                      f.better > 0   ? " (higher is better)"
                      : f.better < 0 ? " (lower is better)"
                                     : "");
        throw CLI::Success();
      },
      "List the fields constraints and objectives can name, then exit");
  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;
  if (!cache_dump.empty()) {
    if (!inputs.empty()) kvlab::fail("give results files or --cache-dump, not both");
    const std::string html =
        kvlab::cache_map_html(kvlab::parse_json_input(kvlab::read_file_bytes(cache_dump, "cache dump"), cache_dump),
                              cache_dump);
    if (out.empty()) out = fs::absolute(cache_dump).parent_path().string();
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) kvlab::fail(out + ": cannot create: " + ec.message());
    kvlab::write_file_atomically(out + "/cache_map.html", html);
    std::printf("wrote %s/cache_map.html\n", out.c_str());
    return 0;
  }
  if (inputs.empty()) kvlab::fail("give results.jsonl files or sweep results directories (or --cache-dump FILE)");

  // Everything is read, checked and rendered before the first file is written.
  kvlab::SummaryOptions options;
  options.objective = objective;
  options.title = title;
  for (const std::string& c : constraint_texts) options.constraints.push_back(kvlab::parse_constraint(c));
  const kvlab::LoadedResults results = kvlab::load_results(inputs);
  const kvlab::Summary summary = kvlab::summarize(results, options);
  const std::string json = kvlab::summary_json(summary).dump(2) + "\n";
  const std::string csv = kvlab::summary_csv(summary);
  const std::string md = kvlab::summary_markdown(summary);
  const std::string html = kvlab::summary_html(summary);

  if (out.empty()) {
    const fs::path first(inputs.front());
    out = ((fs::is_directory(first) ? first : first.parent_path()) / "report").string();
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) kvlab::fail(out + ": cannot create: " + ec.message());
  kvlab::write_file_atomically(out + "/summary.json", json);
  kvlab::write_file_atomically(out + "/summary.csv", csv);
  kvlab::write_file_atomically(out + "/summary.md", md);
  kvlab::write_file_atomically(out + "/summary.html", html);
  for (const kvlab::TaskVerdict& t : summary.tasks) std::printf("%s\n", t.verdict.c_str());
  std::printf("%zu runs; wrote %s/summary.{json,csv,md,html}\n", summary.rows.size(), out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-report", report_main, argc, argv); }
