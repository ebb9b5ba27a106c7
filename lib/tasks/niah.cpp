#include "tasks/niah.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "cache/cached_sequence.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/transformer.h"
#include "tasks/metrics.h"
#include "tasks/run_stats.h"
#include "tasks/task.h"
#include "tasks/text_file.h"

namespace kvlab {

namespace {

// Keys are "adjective-noun" pairs, as RULER's word keys are.
const char* kAdjectives[] = {"amber",  "brave",  "calm",   "dusty",  "eager", "fancy",  "gentle", "hollow",
                             "icy",    "jolly",  "keen",   "lively", "misty", "noble",  "odd",    "proud",
                             "quiet",  "rapid",  "silent", "tender", "upper", "vivid",  "wild",   "young"};
const char* kNouns[] = {"anchor", "badger", "candle", "dragon", "engine", "falcon", "garden", "harbor",
                        "island", "jacket", "kettle", "ladder", "meadow", "needle", "orchid", "pepper",
                        "quartz", "river",  "saddle", "tunnel", "umbrella", "violin", "walnut", "zephyr"};
constexpr int kKeyCount = int(std::size(kAdjectives) * std::size(kNouns));
const char* kFiller = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Draws from std::mt19937_64 without std:: distributions, whose algorithms differ between
// standard libraries: the prompts are the same wherever kvlab is built.
struct Draw {
  std::mt19937_64 g;
  uint64_t below(uint64_t n) { return g() % n; }
  double unit() { return double(g() >> 11) * 0x1.0p-53; }
};

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

// RULER's template (intro, context, question, answer prefix), singular when one value is asked
// for, by RULER's own string replacements.
struct Template {
  std::string intro, question;
};
Template make_template(const std::vector<std::string>& queries, size_t expected) {
  std::string intro = "Some special magic {type} are hidden within the following text. Make sure to memorize it. "
                      "I will quiz you about the {type} afterwards.";
  std::string question = "What are all the special magic {type} for {query} mentioned in the provided text? "
                         "The special magic {type} for {query} mentioned in the provided text are";
  std::string type = "numbers";
  if (expected == 1) {
    for (std::string* s : {&intro, &question}) {
      replace_all(*s, "Some", "A");
      replace_all(*s, "are all", "is");
      replace_all(*s, "are", "is");
    }
    type = "number";
  }
  std::string query = queries.back();
  if (queries.size() > 1) {
    query.clear();
    for (size_t i = 0; i + 1 < queries.size(); i++) query += queries[i] + ", ";
    query += "and " + queries.back();
  }
  for (std::string* s : {&intro, &question}) {
    replace_all(*s, "{type}", type);
    replace_all(*s, "{query}", query);
  }
  return {intro, question};
}

std::string needle_text(const NiahNeedle& n) {
  return "One of the special magic numbers for " + n.key + " is: " + n.value + ".";
}

// The prompt with `units` haystack units; needle i goes before unit round(depth_i * units).
void assemble(NiahPrompt& p, const Template& t, const std::vector<std::string>& lines, size_t start, bool repeat,
              int units) {
  std::string context;
  auto add = [&](const std::string& piece) { context += (context.empty() ? "" : "\n") + piece; };
  for (int u = 0; u <= units; u++) {
    for (const NiahNeedle& n : p.needles)
      if (std::llround(n.depth * units) == u) add(needle_text(n));
    if (u < units) add(repeat ? kFiller : lines[(start + size_t(u)) % lines.size()]);
  }
  p.text = t.intro + "\n" + context + "\n" + t.question;
  p.haystack_begin = t.intro.size() + 1;
  p.haystack_end = p.haystack_begin + context.size();
}

NiahVariant parse_variant(const std::string& s) {
  if (s == "multikey") return NiahVariant::MultiKey;
  if (s == "multivalue") return NiahVariant::MultiValue;
  if (s == "multiquery") return NiahVariant::MultiQuery;
  return NiahVariant::Single;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

}  // namespace

uint64_t niah_sample_seed(uint64_t seed, int length, double depth, int sample) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ uint64_t(length));
  h = splitmix64(h ^ uint64_t(std::llround(depth * 1e6)));
  return splitmix64(h ^ uint64_t(sample));
}

NiahPrompt build_niah_prompt(const Tokenizer& tok, const NiahOptions& o, const std::vector<std::string>& lines,
                             int length, double depth, uint64_t seed) {
  if (depth < 0 || depth > 1) fail("niah: depth " + std::to_string(depth) + " is outside [0, 1]");
  if (!o.repeat_haystack && lines.empty()) fail("niah: the haystack text has no lines");
  const bool multi = o.variant != NiahVariant::Single;
  if (multi && (o.needles < 2 || o.needles > kKeyCount))
    fail("niah: --needles must be in [2, " + std::to_string(kKeyCount) + "]");
  const int n_keys = o.variant == NiahVariant::MultiKey || o.variant == NiahVariant::MultiQuery ? o.needles : 1;
  const int n_values = o.variant == NiahVariant::MultiValue ? o.needles : 1;

  // Draw order: keys, values, asked keys, haystack start line, needle depths.
  NiahPrompt p;
  p.seed = seed;
  Draw draw{std::mt19937_64(seed)};
  std::vector<int> key_ids;
  while (int(key_ids.size()) < n_keys) {
    int k = int(draw.below(kKeyCount));
    if (std::find(key_ids.begin(), key_ids.end(), k) == key_ids.end()) key_ids.push_back(k);
  }
  std::vector<std::string> used_values;
  for (int k : key_ids) {
    const size_t n = std::size(kNouns);
    std::string key = std::string(kAdjectives[size_t(k) / n]) + "-" + kNouns[size_t(k) % n];
    for (int v = 0; v < n_values;) {
      std::string value = std::to_string(1000000 + draw.below(9000000));  // 7 digits
      if (std::find(used_values.begin(), used_values.end(), value) != used_values.end()) continue;
      used_values.push_back(value);
      p.needles.push_back({key, value, 0.0, false});
      v++;
    }
  }
  std::vector<int> asked = {0};
  if (o.variant == NiahVariant::MultiKey) asked = {int(draw.below(uint64_t(n_keys)))};
  if (o.variant == NiahVariant::MultiQuery) {
    asked.resize(size_t(n_keys));
    for (int i = 0; i < n_keys; i++) asked[size_t(i)] = i;
    for (int i = n_keys - 1; i > 0; i--) std::swap(asked[size_t(i)], asked[draw.below(uint64_t(i) + 1)]);
  }
  for (int a : asked) {
    p.queries.push_back(p.needles[size_t(a * n_values)].key);
    for (int v = 0; v < n_values; v++) {
      NiahNeedle& n = p.needles[size_t(a * n_values + v)];
      n.asked = true;
      p.expected.push_back(n.value);
    }
  }
  const size_t start = o.repeat_haystack ? 0 : size_t(draw.below(lines.size()));
  const size_t target = size_t(asked[0] * n_values);
  for (size_t i = 0; i < p.needles.size(); i++) p.needles[i].depth = i == target ? depth : draw.unit();
  p.max_new_tokens = o.max_new_tokens > 0 ? o.max_new_tokens : 16 * int(p.expected.size());

  // Haystack units while their separate token counts fit, then drop units until the whole does.
  const Template t = make_template(p.queries, p.expected.size());
  assemble(p, t, lines, start, o.repeat_haystack, 0);
  const int bare = int(tok.encode(p.text, true).size());
  if (bare > length)
    fail("niah: length " + std::to_string(length) + " is shorter than the prompt without haystack (" +
         std::to_string(bare) + " tokens)");
  std::vector<int> cost;
  for (int room = length - bare;;) {
    const std::string& unit = o.repeat_haystack ? std::string(kFiller) : lines[(start + cost.size()) % lines.size()];
    int c = int(tok.encode(unit + "\n").size());
    if (c > room) break;
    room -= c;
    cost.push_back(c);
  }
  for (;;) {
    assemble(p, t, lines, start, o.repeat_haystack, int(cost.size()));
    p.ids = tok.encode(p.text, true);
    int over = int(p.ids.size()) - length;
    if (over <= 0) break;
    while (over > 0 && !cost.empty()) {
      over -= cost.back();
      cost.pop_back();
    }
  }
  return p;
}

namespace {

struct NiahCell {
  double score = 0;
  int samples = 0;
  nlohmann::json to_json() const { return {{"accuracy", samples ? score / samples : 0.0}, {"samples", samples}}; }
};

const char* kVariantNames[] = {"single", "multikey", "multivalue", "multiquery"};

PreparedTask prepare_niah(const nlohmann::json& j, const TaskSetup& setup) {
  NiahOptions o;
  o.variant = parse_variant(j["variant"].get<std::string>());
  o.repeat_haystack = j["haystack"] == "repeat";
  o.lengths = j["lengths"].get<std::vector<int>>();
  o.depths = j["depths"].get<std::vector<double>>();
  o.samples = j["samples"].get<int>();
  o.needles = j["needles"].get<int>();
  o.max_new_tokens = j["max_new_tokens"].get<int>();
  o.seed = j["seed"].get<uint64_t>();
  for (int length : o.lengths)
    if (length > setup.model.context_window())
      fail("niah: length " + std::to_string(length) + " exceeds " + setup.model.context_window_text());
  PreparedTask t;
  t.config = j;
  std::vector<std::string> lines;
  if (!o.repeat_haystack) {
    const std::string path = j["data"].get<std::string>();
    lines = split_lines(read_text_file(path, "haystack text"));
    t.data_files = {path};
  } else {
    t.config.erase("data");
  }
  std::vector<std::pair<int, double>> cells;  // (length, depth) of each prompt
  std::vector<NiahPrompt> prompts;
  for (int length : o.lengths)
    for (double depth : o.depths)
      for (int s = 0; s < o.samples; s++) {
        prompts.push_back(build_niah_prompt(setup.tokenizer, o, lines, length, depth,
                                            niah_sample_seed(o.seed, length, depth, s)));
        cells.emplace_back(length, depth);
        t.context_tokens = std::max(t.context_tokens, int(prompts.back().ids.size()) + prompts.back().max_new_tokens);
      }
  t.run = [o, prompts = std::move(prompts), cells = std::move(cells), &tok = setup.tokenizer,
           &cache = setup.cache](Transformer& model) {
    RunStats stats;
    std::map<int, NiahCell> by_length;
    std::map<double, NiahCell> by_depth;
    std::map<std::pair<int, double>, NiahCell> by_cell;
    NiahCell all;
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < prompts.size(); i++) {
      const NiahPrompt& p = prompts[i];
      CachedSequence seq(model, cache, int(p.ids.size()), p.max_new_tokens);
      GenerateOptions g;
      g.max_new_tokens = p.max_new_tokens;
      g.stop_ids = tok.eos_ids();
      g.on_step = [&](int) { stats.sample_kv(seq); };
      GenerateResult r = generate_greedy(seq, p.ids, g);
      stats.add_generation(r, p.ids.size());
      stats.end_sequence(seq);
      std::vector<int32_t> answer_ids = r.tokens;
      if (!answer_ids.empty() && std::count(g.stop_ids.begin(), g.stop_ids.end(), answer_ids.back()))
        answer_ids.pop_back();
      const std::string answer = tok.decode(answer_ids);
      const double score = string_match_all(answer, p.expected);
      for (NiahCell* c : {&all, &by_length[cells[i].first], &by_depth[cells[i].second], &by_cell[cells[i]]}) {
        c->score += score;
        c->samples++;
      }
      rows.push_back({{"length", cells[i].first},
                      {"depth", cells[i].second},
                      {"seed", p.seed},
                      {"prompt_tokens", p.ids.size()},
                      {"queries", p.queries},
                      {"expected", p.expected},
                      {"answer", answer},
                      {"generated_tokens", r.tokens.size()},
                      {"score", score},
                      {"kv_bytes_kept_at_end", RunStats::kv_bytes(seq)}});
      if (interrupted()) break;
    }
    auto table = [](const auto& cells, const char* key) {
      nlohmann::json out = nlohmann::json::array();
      for (auto& [k, c] : cells) {
        nlohmann::json row = c.to_json();
        row[key] = k;
        out.push_back(row);
      }
      return out;
    };
    nlohmann::json cell_rows = nlohmann::json::array();
    for (auto& [k, c] : by_cell) {
      nlohmann::json row = c.to_json();
      row["length"] = k.first;
      row["depth"] = k.second;
      cell_rows.push_back(row);
    }
    const std::string variant = kVariantNames[int(o.variant)];
    nlohmann::json m = {{"metric", "string_match_all"},
                        {"variant", variant},
                        {"accuracy", all.to_json()["accuracy"]},
                        {"samples", all.samples},
                        {"by_length", table(by_length, "length")},
                        {"by_depth", table(by_depth, "depth")},
                        {"cells", cell_rows}};
    m.update(stats.to_json());
    m["per_sample"] = rows;
    char line[200];
    std::snprintf(line, sizeof line, "niah %s: string_match_all %.3f over %d samples (%zu lengths x %zu depths)",
                  variant.c_str(), m["accuracy"].get<double>(), all.samples, by_length.size(), by_depth.size());
    return TaskResult{m, line};
  };
  return t;
}

}  // namespace

extern const TaskInfo kNiahTask{
    "niah",
    "needle in a haystack, RULER's variants (single, multikey, multivalue, multiquery) over lengths x depths",
    "Raw prompt (no chat template) with RULER's template: \"Some special magic numbers are hidden within the "
    "following text. Make sure to memorize it. I will quiz you about the numbers afterwards.\", the haystack, then "
    "\"What are all the special magic numbers for KEY mentioned in the provided text? The special magic numbers for "
    "KEY mentioned in the provided text are\" (singular when one value is asked). Needles are \"One of the special "
    "magic numbers for KEY is: VALUE.\" lines: keys are adjective-noun words from a fixed list, values 7-digit "
    "numbers. The haystack is lines of --data from a seeded start line (wrapping at the end) or the repeated "
    "grass/sky filler, joined by newlines; as many whole lines as keep the prompt within each --lengths entry. The "
    "first asked needle sits at the cell's depth (fraction of the haystack's lines), the other needles at seeded "
    "depths. multikey: --needles keys, one asked; multivalue: one key with --needles values; multiquery: --needles "
    "keys, all asked. Generates --max-new-tokens (0: 16 per expected value) greedily, stopping at end-of-sequence. "
    "Score: RULER string_match_all, the fraction of expected values found case-insensitively in the output. Seed: "
    "sample s of cell (length L, depth d) draws from std::mt19937_64 seeded by a splitmix64 chain of (--seed, L, "
    "round(d * 1e6), s), without std:: distributions, so a prompt is reproducible to the token.",
    {{"variant", TaskOption::String, "single", "NIAH variant", -1e300, 1e300,
      {"single", "multikey", "multivalue", "multiquery"}},
     {"haystack", TaskOption::String, "text", "text: lines of --data; repeat: the grass/sky filler", -1e300, 1e300,
      {"text", "repeat"}},
     {"data", TaskOption::Path, "datasets/text/tinyshakespeare.txt", "haystack text file (UTF-8)", -1e300, 1e300, {}},
     {"lengths", TaskOption::IntList, {512, 1024}, "prompt lengths in tokens, comma-separated", 16, 1 << 24, {}},
     {"depths", TaskOption::FloatList, {0.0, 0.25, 0.5, 0.75, 1.0}, "depths of the asked needle, comma-separated",
      0, 1, {}},
     {"samples", TaskOption::Int, 2, "samples per (length, depth) cell", 1, 1 << 20, {}},
     {"needles", TaskOption::Int, 4, "keys (multikey, multiquery) or values (multivalue)", 2, kKeyCount, {}},
     {"max_new_tokens", TaskOption::Int, 0, "tokens to generate at most (0: 16 per expected value)", 0, 1 << 20, {}},
     {"seed", TaskOption::Int, 0, "seed of keys, values, haystack start and distractor depths", 0, 9.2e18, {}}},
    prepare_niah};

}  // namespace kvlab
