#pragma once
// What kvlab-report concludes from a sweep's results: every run as a row, per task the runs that
// meet the user's constraints ranked by the objective, the winner in plain words with the numbers
// behind it, and the Pareto front of KV memory against quality. summary_json() is the
// schema-versioned kvlab.summary (docs/report_schema.md); the CSV, Markdown and HTML are views of it.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/constraint.h"
#include "report/results_file.h"
#include "report/run_row.h"

namespace kvlab {

constexpr int kSummarySchemaVersion = 1;

struct SummaryOptions {
  std::vector<Constraint> constraints;  // all must hold
  std::string objective = "accuracy";   // "accuracy" (the task's own metric) or a field of fields.h
  std::string title = "kvlab sweep report";
};

struct TaskVerdict {
  std::string task;
  std::string objective_field;  // "quality" or the field named
  std::string objective_title;  // "accuracy", "perplexity", "decode tok/s", ...
  bool higher_is_better = true;
  std::vector<size_t> rows;    // indices into Summary::rows of this task's runs
  std::vector<size_t> ranked;  // those meeting the constraints, best first
  std::vector<size_t> pareto;  // on (KV bytes at peak, quality), by KV bytes
  size_t tied = 0;             // runs level with the winner on the objective (the winner included)
  std::string verdict;         // plain words: who wins, by how much, with the numbers
};

struct Summary {
  SummaryOptions options;
  std::vector<ResultsSource> sources;
  std::vector<RunRow> rows;
  std::vector<std::string> settings;  // per row: its varying settings besides model, task and cache ("context=160")
  std::vector<bool> meets;            // per row: meets every constraint
  std::vector<bool> on_pareto;        // per row
  std::vector<TaskVerdict> tasks;     // in order of first appearance
};

// `results` must outlive the summary (rows point at its records).
Summary summarize(const LoadedResults& results, const SummaryOptions& options);
// "lacache budget=32 span=2 context=160": the method and the row's varying settings.
std::string run_name(const Summary& s, size_t row);
// The row's value of `field` as printed ("quality" in the task's own metric's format), "-" if absent.
std::string formatted(const RunRow& row, const std::string& field);
nlohmann::json summary_json(const Summary& s);

}  // namespace kvlab
