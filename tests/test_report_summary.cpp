// kvlab-report: the verdict under constraints and objectives on hand-made results with known
// winners, the Pareto front, and the numbers of every output (JSON, CSV, Markdown) checked
// against the results of a real sweep; results of another schema version are refused before
// anything is written.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "report/constraint.h"
#include "report/pareto.h"
#include "report/summary.h"
#include "report_fixture.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double GiB = 1024.0 * 1024 * 1024;

// One results line as kvlab-sweep writes it, with chosen numbers.
json line(const std::string& id, const std::string& task, const std::string& policy, const std::string& budget,
          double quality, double kv_bytes, double decode) {
  json metrics = {
      {"kv_cache",
       {{"peak", {{"kv_bytes", kv_bytes}}}, {"end", {{"kv_bytes", kv_bytes}}}, {"allocated_bytes_peak", kv_bytes * 2}}},
      {"decode_tokens_per_s", decode},
      {"ttft_s_mean", 0.25},
      {"samples", 10}};
  metrics[task == "perplexity" ? "ppl" : "accuracy"] = quality;
  json cache = {{"policy", policy},
                {"budget", budget},
                {"params", json::object()},
                {"interval", "auto"},
                {"streaming_prefill", false}};
  json report = {{"schema", "kvlab.report"},
                 {"schema_version", 1},
                 {"complete", true},
                 {"task", task},
                 {"model", {{"dir", "/models/llama-8b"}}},
                 {"config", {{"task", task}, {"cache", cache}}},
                 {"memory", {{"context_tokens", 8192}, {"total_bytes", 20 * GiB}, {"kv_bytes", 8 * GiB}}},
                 {"metrics", metrics}};
  return {{"id", id}, {"config", {{"task", task}, {"cache", policy}, {"budget", budget}}}, {"report", report}};
}

std::string write_results(const std::vector<json>& lines) {
  const std::string path = testing::temp_dir() + "/results.jsonl";
  std::string text;
  for (const json& l : lines) text += l.dump() + "\n";
  testing::write_file(path, text);
  return path;
}

std::vector<json> passkey_lines() {
  return {line("aaaaaaaaaaaa", "passkey", "full", "", 1.0, 8 * GiB, 10),
          line("bbbbbbbbbbbb", "passkey", "streaming", "2048", 0.9, 2 * GiB, 30),
          line("cccccccccccc", "passkey", "streaming", "1024", 0.5, 1 * GiB, 40),
          line("dddddddddddd", "passkey", "h2o", "3072", 0.9, 3 * GiB, 50),
          line("eeeeeeeeeeee", "passkey", "h2o", "4096", 0.4, 4 * GiB, 60)};
}

Summary summarize_with(const LoadedResults& r, std::vector<std::string> constraints, const std::string& objective) {
  SummaryOptions o;
  for (const std::string& c : constraints) o.constraints.push_back(parse_constraint(c));
  o.objective = objective;
  return summarize(r, o);
}

std::string winner(const Summary& s, size_t task = 0) {
  return s.tasks[task].ranked.empty() ? "none" : s.rows[s.tasks[task].ranked[0]].id;
}

TEST(ReportSummary, TheWinnerFollowsTheConstraintAndTheObjective) {
  const LoadedResults r = load_results({write_results(passkey_lines())});
  {
    Summary s = summarize_with(r, {}, "accuracy");
    EXPECT_EQ(winner(s), "aaaaaaaaaaaa");
    EXPECT_NE(s.tasks[0].verdict.find("over all 5 runs, the highest accuracy is full on llama-8b (run aaaaaaaaaaaa): "
                                      "accuracy 1.000, 8.00 GiB of KV cache at peak, 10.0 decode tokens/s."),
              std::string::npos)
        << s.tasks[0].verdict;
  }
  {
    Summary s = summarize_with(r, {"kv_bytes<=4GiB"}, "accuracy");
    ASSERT_EQ(s.tasks.size(), 1u);
    // b and d tie at 0.9; b keeps less KV.
    EXPECT_EQ(winner(s), "bbbbbbbbbbbb");
    EXPECT_EQ(s.rows[s.tasks[0].ranked[1]].id, "dddddddddddd");
    EXPECT_EQ(s.tasks[0].tied, 2u);
    const std::string& v = s.tasks[0].verdict;
    for (const char* part :
         {"under kv_bytes ≤ 4.00 GiB (4 of 5 runs qualify)", "streaming budget=2048 on llama-8b",
          "(run bbbbbbbbbbbb): accuracy 0.900, 2.00 GiB of KV cache at peak, 30.0 decode tokens/s",
          "2 runs tie at accuracy 0.900; less KV cache at peak, then faster decoding, breaks the tie",
          "Runner-up: h2o budget=3072 on llama-8b (run dddddddddddd): accuracy 0.900, 3.00 GiB"})
      EXPECT_NE(v.find(part), std::string::npos) << part << "\n" << v;
    EXPECT_EQ(s.meets, (std::vector<bool>{false, true, true, true, true}));
  }
  EXPECT_EQ(winner(summarize_with(r, {"accuracy>=0.5"}, "decode_tokens_per_s")), "dddddddddddd");
  EXPECT_EQ(winner(summarize_with(r, {}, "kv_bytes")), "cccccccccccc");
  EXPECT_EQ(winner(summarize_with(r, {"policy=streaming", "kv_bytes<1.5GiB"}, "accuracy")), "cccccccccccc");
  {
    Summary s = summarize_with(r, {"kv_bytes<1GiB"}, "accuracy");
    EXPECT_EQ(winner(s), "none");
    EXPECT_NE(s.tasks[0].verdict.find("passkey: none of its 5 runs meets kv_bytes < 1.00 GiB. Without it, the "
                                      "highest accuracy is full on llama-8b (run aaaaaaaaaaaa)"),
              std::string::npos)
        << s.tasks[0].verdict;
  }
  EXPECT_THROW(summarize_with(r, {}, "context_tokens"), Error) << "neither more nor less context is better";
  EXPECT_THROW(summarize_with(r, {}, "speed"), Error);
}

TEST(ReportSummary, ParetoFrontOfMemoryAgainstQuality) {
  const LoadedResults r = load_results({write_results(passkey_lines())});
  Summary s = summarize_with(r, {}, "accuracy");
  std::vector<std::string> front;
  for (size_t i : s.tasks[0].pareto) front.push_back(s.rows[i].id);
  // d (3 GiB, 0.9) is beaten by b (2 GiB, 0.9); e by b and d.
  EXPECT_EQ(front, (std::vector<std::string>{"cccccccccccc", "bbbbbbbbbbbb", "aaaaaaaaaaaa"}));
  // Lower is better for perplexity.
  EXPECT_EQ(pareto_front({{1, 10}, {2, 8}, {0.5, 12}, {3, 9}}, false), (std::vector<size_t>{2, 0, 1}));
  EXPECT_EQ(pareto_front({{1, 0.5}, {1, 0.5}, {2, 0.4}}, true), (std::vector<size_t>{0, 1}))
      << "equal points both stay";
  const LoadedResults ppl =
      load_results({write_results({line("p10000000001", "perplexity", "full", "", 10, GiB, 5),
                                   line("p10000000002", "perplexity", "streaming", "64", 8, 2 * GiB, 5),
                                   line("p10000000003", "perplexity", "h2o", "64", 12, GiB / 2, 5)})});
  Summary p = summarize_with(ppl, {}, "accuracy");
  EXPECT_EQ(winner(p), "p10000000002") << "the lowest perplexity wins";
  EXPECT_EQ(p.tasks[0].objective_title, "perplexity");
  EXPECT_EQ(p.tasks[0].pareto.size(), 3u);
}

TEST(ReportSummary, ConstraintsAreParsedOrRefused) {
  Constraint c = parse_constraint("kv_bytes<=4GiB");
  EXPECT_EQ(c.field, "kv_bytes");
  EXPECT_EQ(c.op, Constraint::LessEqual);
  EXPECT_EQ(c.number, 4 * GiB);
  EXPECT_EQ(parse_constraint("accuracy > 0.5").number, 0.5);
  EXPECT_EQ(parse_constraint("decode_tokens_per_s>=1e3").number, 1000);
  EXPECT_EQ(parse_constraint("kv_bytes<512MB").number, 512e6);
  EXPECT_FALSE(parse_constraint("task=passkey").numeric);
  EXPECT_EQ(parse_constraint("policy != full").op, Constraint::NotEqual);
  for (const char* bad : {"kv_bytes", "kv_bytes<=", "<=4GiB", "kv_bites<=4GiB", "kv_bytes<=4 parsecs", "task<3",
                          "kv_bytes=!3", "accuracy>=high"})
    EXPECT_THROW(parse_constraint(bad), Error) << bad;
}

TEST(ReportSummary, AnotherSchemaVersionIsRefusedBeforeAnythingIsWritten) {
  std::vector<json> lines = passkey_lines();
  lines[2]["report"]["schema_version"] = 2;
  const std::string path = write_results(lines);
  const std::string out = testing::temp_dir() + "/out";
  auto r = testing::run_command(testing::bin_dir() + "/kvlab-report " + path + " --out " + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("results.jsonl:3: run cccccccccccc has a kvlab.report of schema_version 2, but this "
                       "kvlab-report reads schema_version 1"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out));
  lines = passkey_lines();
  lines[1]["report"].erase("metrics");
  EXPECT_EQ(
      testing::run_command(testing::bin_dir() + "/kvlab-report " + write_results(lines) + " --out " + out).exit_code,
      2);
  lines[1] = json{{"id", "x"}};
  EXPECT_EQ(
      testing::run_command(testing::bin_dir() + "/kvlab-report " + write_results(lines) + " --out " + out).exit_code,
      2);
  EXPECT_EQ(testing::run_command(testing::bin_dir() + "/kvlab-report /no/such/results.jsonl --out " + out).exit_code,
            2);
  EXPECT_EQ(
      testing::run_command(testing::bin_dir() + "/kvlab-report " + path + " --constraint 'kv_bytes<<1'").exit_code, 2);
  EXPECT_FALSE(fs::exists(out));
}

TEST(ReportSummary, RunsReadFromSeveralFilesCountOnce) {
  const std::string a = write_results(passkey_lines());
  const std::string b = write_results({passkey_lines()[0], line("ffffffffffff", "passkey", "full", "", 0.7, GiB, 5)});
  const LoadedResults r = load_results({a, b});
  EXPECT_EQ(r.runs.size(), 6u);
  EXPECT_EQ(r.sources[1].duplicates, 1u);
}

// The real sweep's results, as summary.json holds them.
TEST(ReportSummary, JsonNumbersAreTheResultsNumbers) {
  const testing::ReportedSweep& rs = testing::reported_sweep();
  const json s = json::parse(testing::read_file(rs.out + "/summary.json"));
  EXPECT_EQ(s["schema"], "kvlab.summary");
  EXPECT_EQ(s["schema_version"], 1);
  EXPECT_EQ(s["title"], "Report test");
  ASSERT_EQ(s["runs"].size(), rs.lines.size());
  ASSERT_EQ(rs.lines.size(), 9u);
  for (const json& run : s["runs"]) {
    const json& line = rs.by_id.at(run["id"].get<std::string>());
    const json& rep = line["report"];
    const json& m = rep["metrics"];
    const json& v = run["values"];
    EXPECT_EQ(run["config"], line["config"]);
    EXPECT_EQ(run["task"], rep["task"]);
    EXPECT_EQ(run["policy"], rep["config"]["cache"]["policy"]);
    EXPECT_EQ(v["kv_bytes"].get<double>(), m["kv_cache"]["peak"]["kv_bytes"].get<double>());
    EXPECT_EQ(v["kv_bytes_end"].get<double>(), m["kv_cache"]["end"]["kv_bytes"].get<double>());
    EXPECT_EQ(v["kv_allocated_bytes"].get<double>(), m["kv_cache"]["allocated_bytes_peak"].get<double>());
    EXPECT_EQ(v["decode_tokens_per_s"].get<double>(), m["decode_tokens_per_s"].get<double>());
    EXPECT_EQ(v["ttft_s"].get<double>(), m["ttft_s_mean"].get<double>());
    EXPECT_EQ(v["memory_bytes"].get<double>(), rep["memory"]["total_bytes"].get<double>());
    EXPECT_EQ(v["context_tokens"].get<double>(), rep["memory"]["context_tokens"].get<double>());
    const char* quality = rep["task"] == "perplexity" ? "ppl" : "accuracy";
    EXPECT_EQ(run["quality_metric"], quality);
    EXPECT_EQ(v["quality"].get<double>(), m[quality].get<double>());
    EXPECT_EQ(run["meets_constraints"], m["kv_cache"]["peak"]["kv_bytes"].get<double>() <= 40 * 1024);
  }
  // One verdict per task, naming a run that meets the constraint.
  ASSERT_EQ(s["tasks"].size(), 3u);
  for (const json& t : s["tasks"]) {
    const std::string id = t["winner"];
    EXPECT_LE(rs.by_id.at(id)["report"]["metrics"]["kv_cache"]["peak"]["kv_bytes"].get<double>(), 40 * 1024);
    EXPECT_NE(t["verdict"].get<std::string>().find("(run " + id + ")"), std::string::npos);
  }
  // Memory over generated tokens: every perplexity window's KV bytes.
  for (const json& series : s["charts"]["memory_over_tokens"]) {
    const json& windows = rs.by_id.at(series["id"].get<std::string>())["report"]["metrics"]["windows"];
    ASSERT_EQ(series["points"].size(), windows.size());
    for (size_t i = 0; i < windows.size(); i++)
      EXPECT_EQ(series["points"][i]["kv_bytes"].get<double>(), windows[i]["kv_bytes_kept"].get<double>());
  }
  EXPECT_EQ(s["charts"]["memory_over_tokens"].size(), 3u);
  EXPECT_EQ(s["charts"]["depth_length_accuracy"].size(), 6u) << "passkey and niah under three methods";
}

// RFC 4180, as far as the summary needs: quoted fields with doubled quotes, CRLF rows.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"')
        field += '"', i++;
      else if (c == '"')
        quoted = false;
      else
        field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field), field.clear();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      rows.back().push_back(field), field.clear();
      rows.emplace_back();
      i++;
    } else {
      field += c;
    }
  }
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

TEST(ReportSummary, CsvRowsCarryTheResultsNumbers) {
  const testing::ReportedSweep& rs = testing::reported_sweep();
  const auto rows = parse_csv(testing::read_file(rs.out + "/summary.csv"));
  ASSERT_EQ(rows.size(), rs.lines.size() + 1);
  const std::vector<std::string>& header = rows[0];
  auto col = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw std::runtime_error("no column " + name);
    return size_t(it - header.begin());
  };
  for (size_t r = 1; r < rows.size(); r++) {
    const auto& row = rows[r];
    ASSERT_EQ(row.size(), header.size());
    const json& line = rs.by_id.at(row[col("id")]);
    const json& m = line["report"]["metrics"];
    EXPECT_EQ(row[col("task")], line["report"]["task"]);
    EXPECT_EQ(std::stod(row[col("kv_bytes")]), m["kv_cache"]["peak"]["kv_bytes"].get<double>());
    EXPECT_EQ(std::stod(row[col("decode_tokens_per_s")]), m["decode_tokens_per_s"].get<double>());
    EXPECT_EQ(std::stod(row[col("ttft_s")]), m["ttft_s_mean"].get<double>());
    EXPECT_EQ(std::stod(row[col("memory_bytes")]), line["report"]["memory"]["total_bytes"].get<double>());
    const char* quality = line["report"]["task"] == "perplexity" ? "ppl" : "accuracy";
    EXPECT_EQ(std::stod(row[col("quality")]), m[quality].get<double>());
    // Every key of the sweep's config, flattened.
    for (auto& [key, value] : line["config"].items()) {
      if (value.is_object()) {
        for (auto& [sub, v] : value.items())
          EXPECT_EQ(row[col("config." + key + "." + sub)], v.is_string() ? v.get<std::string>() : v.dump());
      } else {
        EXPECT_EQ(row[col("config." + key)], value.is_string() ? value.get<std::string>() : value.dump()) << key;
      }
    }
  }
}

TEST(ReportSummary, MarkdownShowsEveryRunWithItsNumbers) {
  const testing::ReportedSweep& rs = testing::reported_sweep();
  const std::string md = testing::read_file(rs.out + "/summary.md");
  EXPECT_EQ(md.rfind("# Report test\n", 0), 0u);
  EXPECT_NE(md.find("9 runs from `results.jsonl`. Objective: accuracy; constraint: kv_bytes ≤ 40.00 KiB."),
            std::string::npos);
  const json s = json::parse(testing::read_file(rs.out + "/summary.json"));
  for (const json& t : s["tasks"]) EXPECT_NE(md.find("- " + t["verdict"].get<std::string>() + "\n"), std::string::npos);
  for (const json& line : rs.lines) {
    const std::string id = line["id"];
    const size_t at = md.find("| `" + id + "` |");
    ASSERT_NE(at, std::string::npos) << id;
    std::vector<std::string> cells;
    std::stringstream row(md.substr(at + 1, md.find('\n', at) - at - 1));
    for (std::string c; std::getline(row, c, '|');) cells.push_back(c.substr(1, c.size() - 2));
    const testing::ExpectedText want = testing::expected_text(line["report"]);
    ASSERT_GE(cells.size(), 11u) << md.substr(at, 200);
    EXPECT_EQ(cells[4], std::to_string(line["report"]["memory"]["context_tokens"].get<int>()));
    EXPECT_EQ(cells[5], want.quality) << id;
    EXPECT_EQ(cells[6], want.kv_peak) << id;
    EXPECT_EQ(cells[7], want.decode) << id;
  }
}

}  // namespace
}  // namespace kvlab
