#include "report/summary.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/environment.h"
#include "core/error.h"
#include "report/chart_data.h"
#include "report/fields.h"
#include "report/pareto.h"

namespace kvlab {

namespace {

using nlohmann::json;

std::string metric_title(const std::string& metric) { return metric == "ppl" ? "perplexity" : metric; }

bool is_cache_or_identity_key(const std::string& key) {
  static const std::set<std::string> kKeys = {"model",  "task",     "tokenizer",        "cache",
                                              "budget", "interval", "streaming_prefill"};
  return kKeys.count(key) || key.rfind("cache_params.", 0) == 0;
}

void flatten(const json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (auto& [key, v] : j.items()) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (v.is_object())
      flatten(v, name, out);
    else
      out[name] = v.is_string() ? v.get<std::string>() : v.dump();
  }
}

// Per row, the settings that differ between the runs of its task (the cache is in the method).
std::vector<std::string> varying_settings(const std::vector<RunRow>& rows) {
  std::vector<std::map<std::string, std::string>> flat(rows.size());
  for (size_t i = 0; i < rows.size(); i++) flatten(rows[i].record->config, "", flat[i]);
  std::map<std::string, std::set<std::string>> keys_by_task;  // task -> varying keys
  std::map<std::string, std::map<std::string, std::set<std::string>>> values;
  std::map<std::string, size_t> count;
  for (size_t i = 0; i < rows.size(); i++) {
    count[rows[i].task]++;
    for (auto& [k, v] : flat[i]) values[rows[i].task][k].insert(v);
  }
  for (auto& [task, by_key] : values)
    for (auto& [k, vs] : by_key) {
      size_t present = 0;
      for (size_t i = 0; i < rows.size(); i++) present += rows[i].task == task && flat[i].count(k);
      if (!is_cache_or_identity_key(k) && (vs.size() > 1 || present < count[task])) keys_by_task[task].insert(k);
    }
  std::vector<std::string> out(rows.size());
  for (size_t i = 0; i < rows.size(); i++)
    for (const std::string& k : keys_by_task[rows[i].task])
      if (flat[i].count(k)) out[i] += (out[i].empty() ? "" : " ") + k + "=" + flat[i][k];
  return out;
}

std::optional<double> objective_value(const RunRow& r, const std::string& field) { return r.value(field); }

// The verdict's numbers for one run: the objective, then KV memory and decode speed.
std::string numbers(const Summary& s, const TaskVerdict& t, size_t i) {
  const RunRow& r = s.rows[i];
  std::string text = t.objective_title + " " + formatted(r, t.objective_field);
  if (t.objective_field != "kv_bytes") text += ", " + formatted(r, "kv_bytes") + " of KV cache at peak";
  if (t.objective_field != "decode_tokens_per_s")
    text += ", " + formatted(r, "decode_tokens_per_s") + " decode tokens/s";
  return text;
}

std::string constraints_text(const SummaryOptions& o) {
  std::string s;
  for (const Constraint& c : o.constraints) s += (s.empty() ? "" : " and ") + c.describe();
  return s;
}

void write_verdict(const Summary& s, TaskVerdict& t) {
  const std::string where = constraints_text(s.options);
  const std::string best = std::string(t.higher_is_better ? "highest " : "lowest ") + t.objective_title;
  auto who = [&](size_t i) { return run_name(s, i) + " on " + s.rows[i].model + " (run " + s.rows[i].id + ")"; };
  if (t.ranked.empty()) {
    t.verdict = t.task + ": none of its " + std::to_string(t.rows.size()) + " runs meets " + where + ".";
    // The best without the constraint, so the reader sees how far off it is.
    std::vector<size_t> all;
    for (size_t i : t.rows)
      if (objective_value(s.rows[i], t.objective_field)) all.push_back(i);
    if (!all.empty()) {
      const size_t b = *std::min_element(all.begin(), all.end(), [&](size_t a, size_t c) {
        const double va = *s.rows[a].value(t.objective_field), vc = *s.rows[c].value(t.objective_field);
        return t.higher_is_better ? va > vc : va < vc;
      });
      t.verdict += " Without it, the " + best + " is " + who(b) + ": " + numbers(s, t, b) + ".";
    }
    return;
  }
  const size_t w = t.ranked[0];
  t.verdict = t.task + ": " +
              (where.empty() ? "over all " + std::to_string(t.rows.size()) + " runs"
                             : "under " + where + " (" + std::to_string(t.ranked.size()) + " of " +
                                   std::to_string(t.rows.size()) + " runs qualify)") +
              ", the " + best + " is " + who(w) + ": " + numbers(s, t, w) + ".";
  if (t.tied > 1)
    t.verdict += " " + std::to_string(t.tied) + " runs tie at " + t.objective_title + " " +
                 formatted(s.rows[w], t.objective_field) +
                 (t.objective_field == "kv_bytes" ? "; faster decoding breaks the tie."
                                                  : "; less KV cache at peak, then faster decoding, breaks the tie.");
  if (t.ranked.size() > 1) t.verdict += " Runner-up: " + who(t.ranked[1]) + ": " + numbers(s, t, t.ranked[1]) + ".";
}

}  // namespace

std::string run_name(const Summary& s, size_t row) {
  const std::string& extra = s.settings[row];
  return s.rows[row].method + (extra.empty() ? "" : " " + extra);
}

std::string formatted(const RunRow& row, const std::string& field) {
  const std::optional<double> v = row.value(field);
  if (!v) return "-";
  return format_value(find_field(field == "quality" ? row.quality_metric : field), *v);
}

Summary summarize(const LoadedResults& results, const SummaryOptions& options) {
  Summary s;
  s.options = options;
  s.sources = results.sources;
  for (const ResultRecord& r : results.runs) s.rows.push_back(make_row(r));
  s.settings = varying_settings(s.rows);
  for (const RunRow& r : s.rows) {
    bool ok = true;
    for (const Constraint& c : options.constraints) ok &= c.holds(r);
    s.meets.push_back(ok);
  }
  s.on_pareto.assign(s.rows.size(), false);

  std::string field = options.objective == "accuracy" ? "quality" : options.objective;
  const Field& f = find_field(field);
  if (f.better == 0 && field != "quality")
    fail("--objective " + options.objective + ": neither more nor less " + f.name + " is better; choose accuracy, " +
         "kv_bytes, decode_tokens_per_s, ttft_s or another field with a direction");
  for (size_t i = 0; i < s.rows.size(); i++) {
    auto it =
        std::find_if(s.tasks.begin(), s.tasks.end(), [&](const TaskVerdict& t) { return t.task == s.rows[i].task; });
    if (it == s.tasks.end()) {
      TaskVerdict t;
      t.task = s.rows[i].task;
      t.objective_field = field;
      t.objective_title = field == "quality" ? metric_title(s.rows[i].quality_metric) : f.title;
      t.higher_is_better = field == "quality" ? s.rows[i].quality_higher_is_better : f.better > 0;
      s.tasks.push_back(t);
      it = s.tasks.end() - 1;
    }
    it->rows.push_back(i);
  }
  for (TaskVerdict& t : s.tasks) {
    for (size_t i : t.rows)
      if (s.meets[i] && objective_value(s.rows[i], t.objective_field)) t.ranked.push_back(i);
    // Best objective first; ties go to less KV memory, then faster decoding, then the id.
    auto key = [&](size_t i, const char* name, double missing) { return s.rows[i].value(name).value_or(missing); };
    std::sort(t.ranked.begin(), t.ranked.end(), [&](size_t a, size_t b) {
      const double va = *s.rows[a].value(t.objective_field), vb = *s.rows[b].value(t.objective_field);
      if (va != vb) return t.higher_is_better ? va > vb : va < vb;
      const double ka = key(a, "kv_bytes", 1e300), kb = key(b, "kv_bytes", 1e300);
      if (ka != kb && t.objective_field != "kv_bytes") return ka < kb;
      const double da = key(a, "decode_tokens_per_s", -1), db = key(b, "decode_tokens_per_s", -1);
      if (da != db) return da > db;
      return s.rows[a].id < s.rows[b].id;
    });
    if (!t.ranked.empty()) {
      const double top = *s.rows[t.ranked[0]].value(t.objective_field);
      for (size_t i : t.ranked) t.tied += *s.rows[i].value(t.objective_field) == top;
    }
    std::vector<std::pair<double, double>> points;
    std::vector<size_t> index;
    for (size_t i : t.rows)
      if (s.rows[i].value("kv_bytes") && s.rows[i].value("quality")) {
        points.emplace_back(*s.rows[i].value("kv_bytes"), *s.rows[i].value("quality"));
        index.push_back(i);
      }
    const bool higher = s.rows[t.rows[0]].quality_higher_is_better;
    for (size_t p : pareto_front(points, higher)) {
      t.pareto.push_back(index[p]);
      s.on_pareto[index[p]] = true;
    }
    write_verdict(s, t);
  }
  return s;
}

nlohmann::json summary_json(const Summary& s) {
  json sources = json::array();
  for (const ResultsSource& src : s.sources)
    sources.push_back({{"path", src.path},
                       {"sha256", src.sha256},
                       {"lines", src.lines},
                       {"duplicates", src.duplicates},
                       {"torn_bytes", src.torn_bytes}});
  json constraints = json::array();
  for (const Constraint& c : s.options.constraints)
    constraints.push_back({{"text", c.text}, {"field", c.field}, {"description", c.describe()}});
  json fields = json::array();
  for (const Field& f : report_fields())
    fields.push_back({{"name", f.name}, {"title", f.title}, {"description", f.description}, {"better", f.better}});
  json runs = json::array();
  for (size_t i = 0; i < s.rows.size(); i++) {
    const RunRow& r = s.rows[i];
    runs.push_back({{"id", r.id},
                    {"source", r.source},
                    {"model", r.model},
                    {"task", r.task},
                    {"method", r.method},
                    {"policy", r.policy},
                    {"budget", r.budget},
                    {"cache_params", r.cache_params},
                    {"interval", r.interval},
                    {"streaming_prefill", r.streaming_prefill},
                    {"settings", s.settings[i]},
                    {"quality_metric", r.quality_metric},
                    {"quality_higher_is_better", r.quality_higher_is_better},
                    {"values", r.values},
                    {"meets_constraints", bool(s.meets[i])},
                    {"pareto", bool(s.on_pareto[i])},
                    {"config", r.record->config}});
  }
  json tasks = json::array();
  for (const TaskVerdict& t : s.tasks) {
    auto ids = [&](const std::vector<size_t>& rows) {
      json a = json::array();
      for (size_t i : rows) a.push_back(s.rows[i].id);
      return a;
    };
    tasks.push_back({{"task", t.task},
                     {"objective_field", t.objective_field},
                     {"objective", t.objective_title},
                     {"higher_is_better", t.higher_is_better},
                     {"runs", t.rows.size()},
                     {"meeting_constraints", t.ranked.size()},
                     {"ranking", ids(t.ranked)},
                     {"winner", t.ranked.empty() ? json() : json(s.rows[t.ranked[0]].id)},
                     {"runner_up", t.ranked.size() < 2 ? json() : json(s.rows[t.ranked[1]].id)},
                     {"tied", t.tied},
                     {"pareto", ids(t.pareto)},
                     {"verdict", t.verdict}});
  }
  return {{"schema", "kvlab.summary"},
          {"schema_version", kSummarySchemaVersion},
          {"title", s.options.title},
          {"generated_utc", utc_timestamp()},
          {"kvlab_version", KVLAB_VERSION},
          {"sources", sources},
          {"objective", s.options.objective},
          {"constraints", constraints},
          {"fields", fields},
          {"tasks", tasks},
          {"runs", runs},
          {"charts", charts_json(s)}};
}

}  // namespace kvlab
