#include "tasks/registry.h"

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/json_excerpt.h"

namespace kvlab {

extern const TaskInfo kPasskeyTask;
extern const TaskInfo kNiahTask;
extern const TaskInfo kPerplexityTask;
extern const TaskInfo kQaTask;

const std::vector<TaskInfo>& tasks() {
  static const std::vector<TaskInfo> all = {kPasskeyTask, kNiahTask, kPerplexityTask, kQaTask};
  return all;
}

namespace {

std::string task_names() {
  std::string s;
  for (const TaskInfo& t : tasks()) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

std::string option_flags(const TaskInfo& task) {
  std::string s;
  for (const TaskOption& o : task.options) s += (s.empty() ? "" : ", ") + option_flag(o.name);
  return task.name + " takes " + (s.empty() ? "no options" : s) + "; see --help-tasks";
}

const TaskOption* find_option(const TaskInfo& task, const std::string& name) {
  for (const TaskOption& o : task.options)
    if (o.name == name) return &o;
  return nullptr;
}

bool any_task_takes(const std::string& name) {
  for (const TaskInfo& t : tasks())
    if (find_option(t, name)) return true;
  return false;
}

std::string range_text(const TaskOption& o) {
  std::ostringstream s;
  s << "[" << o.min << ", " << o.max << "]";
  return s.str();
}

// A scalar of an Int/Float option (or list element); `where` names the flag or config key.
void check_number(const TaskOption& o, bool integer, const nlohmann::json& v, const std::string& where) {
  if (integer ? !v.is_number_integer() : !v.is_number())
    fail(where + " must be " + (integer ? "an integer" : "a number") + ", got " + json_excerpt(v));
  const double x = v.get<double>();
  if (x < o.min || x > o.max) fail(where + " = " + json_excerpt(v) + " is outside " + range_text(o));
}

void check_value(const TaskOption& o, const nlohmann::json& v, const std::string& where) {
  switch (o.kind) {
    case TaskOption::Int:
    case TaskOption::Float:
      check_number(o, o.kind == TaskOption::Int, v, where);
      break;
    case TaskOption::IntList:
    case TaskOption::FloatList:
      if (!v.is_array() || v.empty()) fail(where + " must be a non-empty list of numbers, got " + json_excerpt(v));
      for (const nlohmann::json& x : v) check_number(o, o.kind == TaskOption::IntList, x, where);
      break;
    case TaskOption::Bool:
      if (!v.is_boolean()) fail(where + " must be true or false, got " + json_excerpt(v));
      break;
    case TaskOption::Path:
      if (!v.is_string() || v.get<std::string>().empty()) fail(where + " must be a file path, got " + json_excerpt(v));
      break;
    case TaskOption::String: {
      if (!v.is_string()) fail(where + " must be a string, got " + json_excerpt(v));
      bool ok = o.choices.empty();
      for (const std::string& c : o.choices) ok |= c == v.get<std::string>();
      if (!ok) {
        std::string choices;
        for (const std::string& c : o.choices) choices += (choices.empty() ? "" : ", ") + c;
        fail(where + " is " + json_excerpt(v) + " (choose one of: " + choices + ")");
      }
      break;
    }
  }
}

nlohmann::json parse_number_text(const std::string& text, bool integer, const std::string& where) {
  size_t used = 0;
  try {
    nlohmann::json v = integer ? nlohmann::json(std::stoll(text, &used)) : nlohmann::json(std::stod(text, &used));
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  fail(where + ": \"" + text + "\" is not " + (integer ? "an integer" : "a number"));
}

// Flag text -> the JSON value a config file would hold (lists are comma-separated).
nlohmann::json parse_flag_text(const TaskOption& o, const std::string& text, const std::string& where) {
  switch (o.kind) {
    case TaskOption::Int:
    case TaskOption::Float:
      return parse_number_text(text, o.kind == TaskOption::Int, where);
    case TaskOption::IntList:
    case TaskOption::FloatList: {
      nlohmann::json list = nlohmann::json::array();
      std::stringstream ss(text);
      std::string item;
      while (std::getline(ss, item, ',')) list.push_back(parse_number_text(item, o.kind == TaskOption::IntList, where));
      return list;
    }
    case TaskOption::Bool:
      return text == "true";
    case TaskOption::String:
    case TaskOption::Path:
      return text;
  }
  return nullptr;
}

std::string absolute_under(const std::string& base, const std::string& path) {
  if (base.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(base) / path).lexically_normal().string();
}

// Greedy word wrap at 100 columns; the first line starts with `first`, the others with `rest`.
std::string wrap(const std::string& text, const std::string& first, const std::string& rest) {
  std::istringstream words(text);
  std::string word, line, out;
  const std::string* indent = &first;
  while (words >> word) {
    if (!line.empty() && indent->size() + line.size() + 1 + word.size() > 100) {
      out += *indent + line + "\n";
      line.clear();
      indent = &rest;
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out += *indent + line + "\n";
  return out;
}

}  // namespace

const TaskInfo& find_task(const std::string& name) {
  for (const TaskInfo& t : tasks())
    if (t.name == name) return t;
  fail("unknown task \"" + name + "\" (choose one of: " + task_names() + ")");
}

std::string option_flag(const std::string& option_name) {
  std::string flag = "--" + option_name;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

std::vector<TaskOption> all_task_options() {
  std::vector<TaskOption> out;
  std::vector<std::vector<std::pair<std::string, std::string>>> helps;  // per option: (task, help)
  for (const TaskInfo& t : tasks()) {
    for (const TaskOption& o : t.options) {
      size_t i = 0;
      while (i < out.size() && out[i].name != o.name) i++;
      if (i == out.size()) {
        out.push_back(o);
        helps.emplace_back();
      }
      KVLAB_ASSERT(out[i].kind == o.kind);  // one flag, one way to parse it
      helps[i].emplace_back(t.name, o.help);
    }
  }
  for (size_t i = 0; i < out.size(); i++) {
    bool same = true;
    for (auto& [task, help] : helps[i]) same &= help == helps[i][0].second;
    std::string text, names;
    for (auto& [task, help] : helps[i]) {
      names += (names.empty() ? "" : ", ") + task;
      text += (text.empty() ? "" : "; ") + task + ": " + help;
    }
    out[i].help = same ? helps[i][0].second + " [" + names + "]" : text;
  }
  return out;
}

nlohmann::json resolve_task_options(const TaskInfo& task, const TaskOptionSources& s) {
  for (auto& [name, text] : s.flags)
    if (!find_option(task, name))
      fail(option_flag(name) + " does not apply to task " + task.name + " (" + option_flags(task) + ")");
  for (auto& [name, value] : s.config.items()) {
    if (find_option(task, name)) continue;
    fail(s.config_path + ": " + (any_task_takes(name) ? "key \"" + name + "\" does not apply to task " + task.name
                                                       : "unknown key \"" + name + "\"") +
         " (" + option_flags(task) + ")");
  }
  nlohmann::json out = nlohmann::json::object();
  for (const TaskOption& o : task.options) {
    nlohmann::json v;
    std::string base = s.default_base;
    if (auto f = s.flags.find(o.name); f != s.flags.end()) {
      const std::string where = option_flag(o.name);
      v = parse_flag_text(o, f->second, where);
      check_value(o, v, where);
      base.clear();  // relative to the working directory, as the user typed it
    } else if (s.config.contains(o.name)) {
      v = s.config[o.name];
      check_value(o, v, s.config_path + ": key \"" + o.name + "\"");
      base = s.config_base;
    } else {
      v = o.default_value;
    }
    if (o.kind == TaskOption::Path) v = absolute_under(base, v.get<std::string>());
    out[o.name] = v;
  }
  return out;
}

std::string tasks_help() {
  std::ostringstream s;
  for (const TaskInfo& t : tasks()) {
    s << t.name << ": " << t.summary << "\n" << wrap(t.description, "    ", "    ") << "  options:\n";
    for (const TaskOption& o : t.options) {
      std::string dflt = o.kind == TaskOption::Bool && o.default_value == false ? "off" : o.default_value.dump();
      s << wrap(option_flag(o.name) + " (default " + dflt + "): " + o.help, "    ", "        ");
    }
    s << "\n";
  }
  return s.str();
}

}  // namespace kvlab
