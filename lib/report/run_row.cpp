#include "report/run_row.h"

#include <filesystem>

namespace kvlab {

namespace {

using nlohmann::json;

const json* at(const json& j, std::initializer_list<const char*> path) {
  const json* p = &j;
  for (const char* key : path) {
    if (!p->is_object() || !p->contains(key)) return nullptr;
    p = &(*p)[key];
  }
  return p;
}

void take(RunRow& row, const char* field, const json& j, std::initializer_list<const char*> path) {
  if (const json* v = at(j, path); v && v->is_number()) row.values[field] = v->get<double>();
}

}  // namespace

std::optional<double> RunRow::value(const std::string& field) const {
  auto it = values.find(field);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

RunRow make_row(const ResultRecord& r) {
  RunRow row;
  row.record = &r;
  row.id = r.id;
  row.source = r.source;
  const json& rep = r.report;
  row.task = rep["task"].get<std::string>();
  const json* dir = at(rep, {"model", "dir"});
  row.model = dir && dir->is_string() ? std::filesystem::path(dir->get<std::string>()).filename().string() : "?";
  const json cache = rep["config"].value("cache", json::object());
  row.policy = cache.value("policy", "full");
  row.budget = cache.value("budget", "");
  row.cache_params = cache.value("params", json::object());
  const json interval = cache.value("interval", json("auto"));
  row.interval = interval.is_string() ? interval.get<std::string>() : interval.dump();
  row.streaming_prefill = cache.value("streaming_prefill", false);
  row.method = row.policy;
  if (!row.budget.empty() && row.policy != "full") row.method += " budget=" + row.budget;
  for (auto& [name, v] : row.cache_params.items())
    row.method += " " + name + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  if (row.interval != "auto" && row.policy != "full") row.method += " interval=" + row.interval;
  if (row.streaming_prefill) row.method += " streaming-prefill";

  const json& m = rep["metrics"];
  take(row, "accuracy", m, {"accuracy"});
  take(row, "score", m, {"score"});
  take(row, "ppl", m, {"ppl"});
  if (row.task == "perplexity" || (!m.contains("accuracy") && !m.contains("score") && m.contains("ppl"))) {
    row.quality_metric = "ppl";
    row.quality_higher_is_better = false;
  } else {
    row.quality_metric = row.task == "qa" || !m.contains("accuracy") ? "score" : "accuracy";
  }
  if (auto q = row.value(row.quality_metric)) row.values["quality"] = *q;
  take(row, "kv_bytes", m, {"kv_cache", "peak", "kv_bytes"});
  take(row, "kv_bytes_end", m, {"kv_cache", "end", "kv_bytes"});
  take(row, "kv_allocated_bytes", m, {"kv_cache", "allocated_bytes_peak"});
  take(row, "memory_bytes", rep, {"memory", "total_bytes"});
  take(row, "planned_kv_bytes", rep, {"memory", "kv_bytes"});
  take(row, "weight_bytes", rep, {"memory", "weight_bytes"});
  take(row, "context_tokens", rep, {"memory", "context_tokens"});
  take(row, "decode_tokens_per_s", m, {"decode_tokens_per_s"});
  take(row, "prefill_tokens_per_s", m, {"prefill_tokens_per_s_mean"});
  take(row, "ttft_s", m, {"ttft_s_mean"});
  take(row, "token_latency_s_p50", m, {"token_latency_s_p50"});
  take(row, "token_latency_s_p99", m, {"token_latency_s_p99"});
  take(row, "host_memory_bytes", m, {"host_memory_peak_bytes"});
  take(row, "backend_memory_bytes", m, {"backend_memory_peak_bytes"});
  take(row, "samples", m, {"samples"});
  if (!row.values.count("samples")) take(row, "samples", m, {"examples"});
  if (!row.values.count("samples")) take(row, "samples", m, {"predicted_tokens"});
  return row;
}

}  // namespace kvlab
