#pragma once
// What kvlab-eval's --config file holds, as a sweep needs to know it: the keys kvlab-eval reads
// itself (model, tokenizer, task, backend, out and the cache keys); every other key is an option
// of the chosen task (tasks/registry.h). The mapping mirrors apps/kvlab-eval.cpp.
#include <nlohmann/json.hpp>
#include <string>

#include "cache/cached_sequence.h"
#include "tasks/task.h"

namespace kvlab {

bool is_eval_general_key(const std::string& key);
// cache, budget, cache_params, interval, streaming_prefill.
bool is_eval_cache_key(const std::string& key);
// The cache spec `config` names, validated against the policy registry as kvlab-eval does.
// `where` prefixes messages.
CacheSpec eval_cache_spec(const nlohmann::json& config, const std::string& where);
// The task options of `config` (its keys that are not general), validated against the task's
// specs, with defaults filled in and paths made absolute: relative paths given in `config` are
// relative to `config_base`, default paths to `default_base`.
nlohmann::json eval_task_options(const TaskInfo& task, const nlohmann::json& config, const std::string& where,
                                 const std::string& config_base, const std::string& default_base);

}  // namespace kvlab
