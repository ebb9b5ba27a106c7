#pragma once
// One run as kvlab-report compares it: what it was (model, task, cache method) and its numbers by
// field name (fields.h), taken from its report.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "report/results_file.h"

namespace kvlab {

struct RunRow {
  std::string id;
  std::string source;  // file:line
  std::string model;   // the model directory's name
  std::string task;
  std::string policy;
  std::string budget;           // as given ("" for none)
  nlohmann::json cache_params;  // as given
  std::string interval = "auto";  // decode steps between policy calls, as the report gave it
  bool streaming_prefill = false;
  std::string method;          // "lacache budget=32 span=2": policy and its settings
  std::string quality_metric;  // accuracy (passkey, niah), score (qa) or ppl (perplexity)
  bool quality_higher_is_better = true;
  std::map<std::string, double> values;  // field name -> value (absent when the report has none)
  const ResultRecord* record = nullptr;

  std::optional<double> value(const std::string& field) const;
};

RunRow make_row(const ResultRecord& record);

}  // namespace kvlab
