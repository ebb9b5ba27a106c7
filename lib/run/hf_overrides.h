#pragma once
// --hf-overrides JSON (and a config file's "hf_overrides"): settings merged into a model's
// config.json before it is read, as vLLM's flag of that name; which keys may be overridden and
// how they merge is load_model_config's (model/config.h).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace kvlab {

void add_hf_overrides_flag(CLI::App& app, std::string& text);
// The flag's JSON (null when not given); bad JSON fails with exit code 2 naming the flag.
nlohmann::json hf_overrides_from_flag(const std::string& text);

}  // namespace kvlab
