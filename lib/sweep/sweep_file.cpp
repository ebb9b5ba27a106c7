#include "sweep/sweep_file.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "cache/registry.h"
#include "core/error.h"
#include "core/json_input.h"
#include "sweep/eval_config.h"
#include "sweep/run_id.h"
#include "tasks/registry.h"
#include "tasks/text_file.h"

namespace kvlab {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr size_t kMaxRuns = 100000;

// One value for one dotted key, and the part of the file it came from.
struct Setting {
  std::string key;
  json value;
  std::string where;
};
using Point = std::vector<Setting>;

// Keys that advance together; a grid axis has one key.
struct Axis {
  std::string where;
  std::vector<std::string> keys;
  std::vector<json> values;  // per key, an array of `size` values
  size_t size = 0;
};

// The top level, or one element of models, tasks or caches: fixed settings plus its own axes.
struct Entry {
  std::string where;
  Point fixed;
  std::vector<Axis> axes;
};

std::string names_of(const std::set<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// "cache_params": {"span": 2} becomes "cache_params.span": 2, so a parameter set in one place and
// another set elsewhere merge, and the same parameter set twice is a conflict.
void add_setting(Point& point, const std::string& key, const json& value, const std::string& where) {
  if (key == "cache_params" && value.is_object()) {
    for (auto& [name, v] : value.items()) point.push_back({key + "." + name, v, where});
    return;
  }
  point.push_back({key, value, where});
}

class Parser {
 public:
  Parser(const std::string& path, const SweepDefaults& defaults) : path_(path), defaults_(defaults) {
    base_dir_ = fs::absolute(path).parent_path().parent_path().lexically_normal();
  }

  Sweep parse(const json& file);

 private:
  [[noreturn]] void error(const std::string& where, const std::string& message) const {
    fail(path_ + ": " + where + (where.empty() ? "" : ": ") + message);
  }
  Entry parse_entry(const json& object, const std::string& where);
  Axis parse_zip_group(const json& group, const std::string& where);
  std::vector<Entry> parse_list(const json& file, const char* list, const char* key);
  void collect_names(const Entry& e, const std::string& key, std::set<std::string>& names) const;
  void check_key(const std::string& key, const std::string& where) const;
  std::string portable_path(const std::string& path) const;
  std::string absolute_path(const std::string& path) const;
  SweepRun resolve(const Point& base, const Point& model, const Point& task, const Point& cache, const Point& axes,
                   const std::string& where_task, const std::string& where_cache, const std::string& where_run);

  std::string path_;
  SweepDefaults defaults_;
  fs::path base_dir_;
  std::set<std::string> tasks_, policies_;
};

Axis Parser::parse_zip_group(const json& group, const std::string& where) {
  if (!group.is_object() || group.empty()) error(where, "must be an object of equally long lists, got " + group.dump());
  Axis a;
  a.where = where;
  std::string first;
  for (auto& [key, values] : group.items()) {
    if (!values.is_array()) error(where, "\"" + key + "\" must be a list of values, got " + values.dump());
    if (values.empty()) error(where, "\"" + key + "\" is an empty list: the sweep would have no runs");
    if (a.keys.empty()) {
      a.size = values.size();
      first = key;
    } else if (values.size() != a.size) {
      error(where, "zipped axes must have the same length, but \"" + first + "\" has " + std::to_string(a.size) +
                       " values and \"" + key + "\" has " + std::to_string(values.size()));
    }
    a.keys.push_back(key);
    a.values.push_back(values);
  }
  return a;
}

// "tasks[1]" + "grid" -> "tasks[1].grid"; the top level's axes are plain "grid", "zip[0]".
std::string join(const std::string& where, const std::string& part) {
  return where.empty() ? part : where + "." + part;
}

// Whether a setting from `where` belongs to the entry at `entry` ("caches[1].grid.budget" does to
// "caches[1]", not to "caches[10]").
bool from_entry(const std::string& where, const std::string& entry) {
  return where.rfind(entry, 0) == 0 && (where.size() == entry.size() || where[entry.size()] == '.');
}

Entry Parser::parse_entry(const json& object, const std::string& where) {
  Entry e;
  e.where = where;
  for (auto& [key, value] : object.items()) {
    if (key == "grid") {
      if (!value.is_object()) error(join(where, "grid"), "must be an object of lists, got " + value.dump());
      for (auto& [axis_key, values] : value.items()) {
        const std::string w = join(where, "grid." + axis_key);
        if (!values.is_array()) error(w, "must be a list of values, got " + values.dump());
        if (values.empty()) error(w, "is an empty list: the sweep would have no runs");
        e.axes.push_back({w, {axis_key}, {values}, values.size()});
      }
    } else if (key == "zip") {
      if (value.is_array()) {
        if (value.empty()) error(join(where, "zip"), "is an empty list");
        for (size_t i = 0; i < value.size(); i++)
          e.axes.push_back(parse_zip_group(value[i], join(where, "zip[" + std::to_string(i) + "]")));
      } else {
        e.axes.push_back(parse_zip_group(value, join(where, "zip")));
      }
    } else {
      add_setting(e.fixed, key, value, where);
    }
  }
  return e;
}

// `list` is "models", "tasks" or "caches"; each element is a name (a string) or an object with
// `key` and any other settings and axes.
std::vector<Entry> Parser::parse_list(const json& file, const char* list, const char* key) {
  std::vector<Entry> out;
  if (!file.contains(list)) return out;
  const json& items = file[list];
  if (!items.is_array()) error(list, "must be a list, got " + items.dump());
  if (items.empty()) error(list, "is an empty list: the sweep would have no runs");
  for (size_t i = 0; i < items.size(); i++) {
    const std::string where = std::string(list) + "[" + std::to_string(i) + "]";
    const json& item = items[i];
    if (item.is_string()) {
      out.push_back({where, {{key, item, where}}, {}});
    } else if (item.is_object()) {
      Entry e = parse_entry(item, where);
      bool named = false;
      for (const Setting& s : e.fixed) named |= s.key == key;
      for (const Axis& a : e.axes)
        for (const std::string& k : a.keys) named |= k == key;
      if (!named) error(where, std::string("names no \"") + key + "\"");
      out.push_back(std::move(e));
    } else {
      error(where, std::string("must be a ") + key + " name or an object, got " + item.dump());
    }
  }
  return out;
}

void Parser::collect_names(const Entry& e, const std::string& key, std::set<std::string>& names) const {
  auto add = [&](const json& v, const std::string& where) {
    if (!v.is_string()) error(where, "\"" + key + "\" must be a string, got " + v.dump());
    try {
      if (key == "task") find_task(v.get<std::string>());
      if (key == "cache") find_policy(v.get<std::string>());
    } catch (const Error& err) {
      error(where, err.what());
    }
    names.insert(v.get<std::string>());
  };
  for (const Setting& s : e.fixed)
    if (s.key == key) add(s.value, s.where);
  for (const Axis& a : e.axes)
    for (size_t k = 0; k < a.keys.size(); k++)
      if (a.keys[k] == key)
        for (const json& v : a.values[k]) add(v, a.where);
}

void Parser::check_key(const std::string& key, const std::string& where) const {
  if (key == "out")
    error(where, "\"out\" is set by kvlab-sweep (RESULTS_DIR/runs/<id>.json); remove it from the sweep file");
  if (key.rfind("cache_params.", 0) == 0) {
    const std::string name = key.substr(13);
    for (const std::string& p : policies_)
      for (const ParamSpec& spec : find_policy(p).params)
        if (spec.name == name) return;
    error(where, "cache parameter \"" + name + "\" belongs to none of the sweep's policies (" + names_of(policies_) +
                     "; see kvlab-eval --help-cache)");
  }
  if (key.find('.') != std::string::npos)
    error(where, "unknown key \"" + key + "\" (only cache_params.NAME may be dotted)");
  if (is_eval_general_key(key)) return;
  for (const std::string& t : tasks_)
    for (const TaskOption& o : find_task(t).options)
      if (o.name == key) return;
  error(where, "unknown key \"" + key + "\": neither a kvlab-eval setting nor an option of the sweep's tasks (" +
                   names_of(tasks_) + "; see kvlab-eval --help-tasks)");
}

std::string Parser::absolute_path(const std::string& path) const {
  fs::path p(path);
  return (p.is_absolute() ? p : base_dir_ / p).lexically_normal().string();
}

// Paths under the base directory stay relative, so ids do not depend on where the tree lives.
std::string Parser::portable_path(const std::string& path) const {
  const fs::path abs(absolute_path(path));
  const fs::path rel = abs.lexically_relative(base_dir_);
  if (!rel.empty() && *rel.begin() != "..") return rel.string();
  return abs.string();
}

std::vector<Point> expand(const Entry& e) {
  std::vector<Point> points = {e.fixed};
  for (const Axis& a : e.axes) {
    std::vector<Point> next;
    for (const Point& p : points)
      for (size_t i = 0; i < a.size; i++) {
        Point q = p;
        for (size_t k = 0; k < a.keys.size(); k++) add_setting(q, a.keys[k], a.values[k][i], a.where);
        next.push_back(std::move(q));
      }
    points = std::move(next);
    if (points.size() > kMaxRuns)
      fail(e.where + ": the axes expand to more than " + std::to_string(kMaxRuns) + " runs");
  }
  return points;
}

void set_dotted(json& config, const std::string& key, const json& value) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos)
    config[key] = value;
  else
    config[key.substr(0, dot)][key.substr(dot + 1)] = value;
}

SweepRun Parser::resolve(const Point& base, const Point& model, const Point& task, const Point& cache,
                         const Point& axes, const std::string& where_task, const std::string& where_cache,
                         const std::string& where_run) {
  std::map<std::string, Setting> flat;
  for (const Setting& s : base) flat[s.key] = s;
  std::set<std::string> set_here;  // keys set by something other than `base`
  for (const Point* p : {&model, &task, &cache, &axes})
    for (const Setting& s : *p) {
      if (set_here.count(s.key))
        error(s.where, "\"" + s.key + "\" is also set by " + flat[s.key].where + "; set each key in one place");
      set_here.insert(s.key);
      flat[s.key] = s;
    }
  auto value_of = [&](const std::string& key, const std::string& fallback) {
    auto it = flat.find(key);
    return it == flat.end() ? fallback : it->second.value.get<std::string>();
  };
  const TaskInfo& t = find_task(value_of("task", "passkey"));
  const PolicyInfo& policy = find_policy(value_of("cache", "full"));

  // A key shared by all runs applies to the runs whose task or policy takes it; a task's or a
  // cache strategy's own settings always apply (and are errors when they do not fit).
  json config = json::object();
  for (auto& [key, s] : flat) {
    if (key.rfind("cache_params.", 0) == 0) {
      const std::string name = key.substr(13);
      bool takes = false;
      for (const ParamSpec& spec : policy.params) takes |= spec.name == name;
      if (!takes && !from_entry(s.where, where_cache)) continue;
    } else if (key == "budget") {
      if (!policy.needs_budget && !from_entry(s.where, where_cache)) continue;
    } else if (!is_eval_general_key(key)) {
      bool takes = false;
      for (const TaskOption& o : t.options) takes |= o.name == key;
      if (!takes && !from_entry(s.where, where_task)) continue;
    }
    set_dotted(config, key, s.value);
  }
  if (!config.contains("model")) config["model"] = defaults_.model;
  if (!config.contains("task")) config["task"] = t.name;
  if (!config.contains("backend")) config["backend"] = "cpu";
  if (!config.contains("cache")) config["cache"] = policy.name;

  const std::string where = path_ + " (" + where_run + ")";
  for (const char* key : {"model", "tokenizer", "backend"})
    if (config.contains(key) && (!config[key].is_string() || config[key].get<std::string>().empty()))
      fail(where + ": key \"" + key + "\" must be a non-empty string, got " + config[key].dump());
  const std::string backend = config["backend"].get<std::string>();
  if (backend != "cpu" && backend != "cuda") fail(where + ": backend \"" + backend + "\" is not cpu or cuda");
  eval_cache_spec(config, where);
  if (config.contains("budget") && config["budget"].is_number()) config["budget"] = config["budget"].dump();
  if (config.contains("cache_params") && config["cache_params"].empty()) config.erase("cache_params");

  // Task options with their defaults, so a config that spells out a default gets the same id.
  json options = eval_task_options(t, config, where, base_dir_.string(), defaults_.data_root);
  for (auto it = config.begin(); it != config.end();)
    it = is_eval_general_key(it.key()) ? std::next(it) : config.erase(it);
  for (const TaskOption& o : t.options)
    config[o.name] =
        o.kind == TaskOption::Path ? json(portable_path(options[o.name].get<std::string>())) : options[o.name];
  for (const char* key : {"model", "tokenizer", "leank_mask"})
    if (config.contains(key)) config[key] = portable_path(config[key].get<std::string>());

  SweepRun run;
  run.id = run_id(config);
  run.config = std::move(config);
  return run;
}

Sweep Parser::parse(const json& file) {
  if (!file.is_object()) error("", "a sweep file is a JSON object");
  static const std::set<std::string> kTopKeys = {"name",  "description", "results_dir", "base", "models",
                                                 "tasks", "caches",      "grid",        "zip"};
  for (auto& [key, value] : file.items())
    if (!kTopKeys.count(key))
      error("", "unknown key \"" + key +
                    "\" (a sweep file has name, description, results_dir, base, models, "
                    "tasks, caches, grid and zip; kvlab-eval settings go in \"base\")");
  Sweep sweep;
  sweep.path = path_;
  sweep.base_dir = base_dir_.string();
  sweep.name = fs::path(path_).stem().string();
  for (const char* key : {"name", "description", "results_dir"})
    if (file.contains(key) && (!file[key].is_string() || file[key].get<std::string>().empty()))
      error(key, "must be a non-empty string, got " + file[key].dump());
  if (file.contains("name")) sweep.name = file["name"].get<std::string>();
  if (file.contains("results_dir")) sweep.results_dir = absolute_path(file["results_dir"].get<std::string>());

  Entry base;
  if (file.contains("base")) {
    if (!file["base"].is_object()) error("base", "must be an object of kvlab-eval settings");
    for (auto& [key, value] : file["base"].items()) {
      if (key == "grid" || key == "zip") error("base", "axes go at the top level or in a list entry, not in base");
      add_setting(base.fixed, key, value, "base");
    }
  }
  base.where = "base";
  json top_axes = json::object();
  for (const char* key : {"grid", "zip"})
    if (file.contains(key)) top_axes[key] = file[key];
  Entry top = parse_entry(top_axes, "");
  std::vector<Entry> models = parse_list(file, "models", "model");
  std::vector<Entry> tasks = parse_list(file, "tasks", "task");
  std::vector<Entry> caches = parse_list(file, "caches", "cache");
  // Absent lists are one entry taking whatever base says.
  if (models.empty()) models.push_back({"models", {}, {}});
  if (tasks.empty()) tasks.push_back({"tasks", {}, {}});
  if (caches.empty()) caches.push_back({"caches", {}, {}});

  std::vector<const Entry*> all = {&base, &top};
  for (const std::vector<Entry>* list : {&models, &tasks, &caches})
    for (const Entry& e : *list) all.push_back(&e);
  for (const Entry* e : all) {
    collect_names(*e, "task", tasks_);
    collect_names(*e, "cache", policies_);
  }
  if (tasks_.empty()) tasks_.insert("passkey");
  if (policies_.empty()) policies_.insert("full");
  for (const Entry* e : all) {
    for (const Setting& setting : e->fixed) check_key(setting.key, setting.where);
    for (const Axis& a : e->axes)
      for (const std::string& k : a.keys) check_key(k, a.where);
  }

  // Every model x task x cache strategy x top-level axis point, in that nesting order.
  struct Expanded {
    const Entry* entry;
    std::vector<Point> points;
  };
  auto expand_all = [](const std::vector<Entry>& list) {
    std::vector<Expanded> out;
    for (const Entry& e : list) out.push_back({&e, expand(e)});
    return out;
  };
  const std::vector<Expanded> model_points = expand_all(models), task_points = expand_all(tasks),
                              cache_points = expand_all(caches);
  const std::vector<Point> top_points = expand(top);
  std::set<std::string> seen;
  for (const Expanded& m : model_points)
    for (const Point& mp : m.points)
      for (const Expanded& t : task_points)
        for (const Point& tp : t.points)
          for (const Expanded& c : cache_points)
            for (const Point& cp : c.points)
              for (const Point& ap : top_points) {
                const std::string where_run = m.entry->where + " x " + t.entry->where + " x " + c.entry->where;
                SweepRun run = resolve(base.fixed, mp, tp, cp, ap, t.entry->where, c.entry->where, where_run);
                if (!seen.insert(run.id).second) continue;
                run.index = sweep.runs.size();
                sweep.runs.push_back(std::move(run));
                if (sweep.runs.size() > kMaxRuns)
                  error("", "expands to more than " + std::to_string(kMaxRuns) + " runs");
              }
  if (sweep.runs.empty()) error("", "expands to no runs");

  // Keys whose values differ between the runs that have them.
  std::map<std::string, std::set<std::string>> values;
  for (const SweepRun& r : sweep.runs)
    for (auto& [key, v] : flatten_config(r.config)) values[key].insert(v.dump());
  for (auto& [key, v] : values)
    if (v.size() > 1) sweep.varying.push_back(key);
  return sweep;
}

}  // namespace

Sweep parse_sweep(const json& file, const std::string& path, const SweepDefaults& defaults) {
  return Parser(path, defaults).parse(file);
}

Sweep load_sweep(const std::string& path, const SweepDefaults& defaults) {
  return parse_sweep(parse_json_input(read_file_bytes(path, "sweep"), path), path, defaults);
}

nlohmann::json eval_config_for(const Sweep& sweep, const SweepRun& run) {
  json config = run.config;
  auto absolute = [&](json& v) {
    fs::path p(v.get<std::string>());
    if (!p.is_absolute()) v = (fs::path(sweep.base_dir) / p).lexically_normal().string();
  };
  for (const char* key : {"model", "tokenizer"})
    if (config.contains(key)) absolute(config[key]);
  for (const TaskOption& o : find_task(config["task"].get<std::string>()).options)
    if (o.kind == TaskOption::Path && config.contains(o.name)) absolute(config[o.name]);
  return config;
}

const nlohmann::json* find_dotted(const nlohmann::json& config, const std::string& key) {
  const json* at = &config;
  size_t start = 0;
  for (;;) {
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!at->is_object() || !at->contains(part)) return nullptr;
    at = &(*at)[part];
    if (dot == std::string::npos) return at;
    start = dot + 1;
  }
}

std::vector<std::pair<std::string, nlohmann::json>> flatten_config(const nlohmann::json& config) {
  std::vector<std::pair<std::string, json>> out;
  for (auto& [key, value] : config.items()) {
    if (value.is_object()) {
      for (auto& [sub, v] : flatten_config(value)) out.emplace_back(key + "." + sub, v);
    } else {
      out.emplace_back(key, value);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> run_settings(const Sweep& sweep, const SweepRun& run) {
  const json& c = run.config;
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](const std::string& key, const json& v) {
    std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    if (key == "model" || key == "tokenizer") text = fs::path(text).filename().string();
    out.emplace_back(key.rfind("cache_params.", 0) == 0 ? key.substr(13) : key, text);
  };
  if (const json* b = find_dotted(c, "budget")) add("budget", *b);
  if (c.contains("cache_params"))
    for (auto& [name, v] : c["cache_params"].items()) add("cache_params." + name, v);
  for (const std::string& key : sweep.varying)
    if (key != "task" && key != "cache" && key != "budget" && key.rfind("cache_params.", 0) != 0)
      if (const json* v = find_dotted(c, key)) add(key, *v);
  return out;
}

std::string run_label(const Sweep& sweep, const SweepRun& run) {
  std::string label = run.config["task"].get<std::string>() + " " + run.config["cache"].get<std::string>();
  for (auto& [name, text] : run_settings(sweep, run)) label += " " + name + "=" + text;
  return label;
}

}  // namespace kvlab
