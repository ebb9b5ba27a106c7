#include "sweep/eval_config.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/json_excerpt.h"
#include "run/cache_options.h"
#include "tasks/registry.h"

namespace kvlab {

namespace {
const std::vector<std::string> kCacheKeys = {"cache",      "budget",     "cache_params", "interval",
                                             "streaming_prefill", "leank_mask", "leank_sink", "leank_recent",
                                             "leank_accumulate"};
const std::vector<std::string> kOtherKeys = {"model", "hf_overrides", "tokenizer", "task", "backend", "out"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
}  // namespace

bool is_eval_cache_key(const std::string& key) { return contains(kCacheKeys, key); }
bool is_eval_general_key(const std::string& key) { return is_eval_cache_key(key) || contains(kOtherKeys, key); }

CacheSpec eval_cache_spec(const nlohmann::json& config, const std::string& where) {
  CacheFlags f;
  for (const std::string& key : kCacheKeys) {
    if (!config.contains(key)) continue;
    const nlohmann::json& v = config[key];
    auto wrong = [&](const char* want) { fail(where + ": key \"" + key + "\" must be " + want + ", got " + json_excerpt(v)); };
    if (key == "cache") {
      if (!v.is_string()) wrong("a policy name");
      f.policy = v.get<std::string>();
    } else if (key == "budget") {
      if (!v.is_string() && !v.is_number()) wrong("tokens, a fraction or a size");
      f.budget = v.is_string() ? v.get<std::string>() : v.dump();
    } else if (key == "cache_params") {
      if (!v.is_object()) wrong("an object of parameter values");
      for (auto& [name, value] : v.items())
        f.params.push_back(name + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));
    } else if (key == "interval") {
      if (!v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > (1 << 20))
        wrong("an integer in [1, 1048576]");
      f.interval = v.get<int>();
    } else if (key == "streaming_prefill") {
      if (!v.is_boolean()) wrong("true or false");
      f.streaming_prefill = v.get<bool>();
    } else if (key == "leank_mask") {
      if (!v.is_string()) wrong("a mask file path");
      f.leank_mask = v.get<std::string>();
    } else {  // leank_sink, leank_recent, leank_accumulate
      if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > (1 << 24)) wrong("an integer in [0, 16777216]");
      int& slot = key == "leank_sink" ? f.leank.sink : key == "leank_recent" ? f.leank.recent : f.leank.accumulate;
      slot = v.get<int>();
    }
  }
  try {
    return cache_spec_from_flags(f);
  } catch (const Error& e) {
    fail(where + ": " + e.what(), e.code());
  }
}

nlohmann::json eval_task_options(const TaskInfo& task, const nlohmann::json& config, const std::string& where,
                                 const std::string& config_base, const std::string& default_base) {
  TaskOptionSources sources;
  sources.config_path = where;
  sources.config_base = config_base;
  sources.default_base = default_base;
  for (auto& [key, value] : config.items())
    if (!is_eval_general_key(key)) sources.config[key] = value;
  return resolve_task_options(task, sources);
}

}  // namespace kvlab
