#pragma once
// Tasks by name, and their options as users give them: flags, a config file, or defaults.
#include <map>
#include <string>
#include <vector>

#include "tasks/task.h"

namespace kvlab {

const std::vector<TaskInfo>& tasks();
// Throws Error listing the valid names.
const TaskInfo& find_task(const std::string& name);

std::string option_flag(const std::string& option_name);  // "max_new_tokens" -> "--max-new-tokens"
// Every option of every task once, for registering flags; an option that several tasks share
// has one kind, and its help says which task reads it how.
std::vector<TaskOption> all_task_options();

// Where a task's option values come from; the first that has one wins.
struct TaskOptionSources {
  std::map<std::string, std::string> flags;           // option name -> text after its flag ("true" for Bool)
  nlohmann::json config = nlohmann::json::object();   // option name -> value from the config file
  std::string config_path;                            // names the file in messages
  std::string config_base;   // relative paths in the config file are relative to this
  std::string default_base;  // relative default paths are relative to this (the repository root)
};

// Validates every given value against the task's specs (type, range, choices), rejects options
// the task does not take, fills in defaults and makes paths absolute. Messages name the flag or
// the config file and key.
nlohmann::json resolve_task_options(const TaskInfo& task, const TaskOptionSources& sources);

// Every task's summary, description and options with defaults (kvlab-eval --help-tasks).
std::string tasks_help();

}  // namespace kvlab
