#pragma once
// Cache policies by name, with their documented parameters; validation of user settings.
#include <memory>
#include <string>
#include <vector>

#include "cache/policy.h"

namespace kvlab {

const std::vector<PolicyInfo>& cache_policies();
// Throws Error listing the valid names.
const PolicyInfo& find_policy(const std::string& name);
// Checks `given` (an object of parameter values) against the policy's specs: unknown names,
// wrong types and out-of-range values are errors naming the parameter and the valid choices.
// Returns all parameters with defaults filled in.
nlohmann::json resolve_params(const PolicyInfo& info, const nlohmann::json& given);
// Parses "key=value" (from --cache-param) into `params`, typed by the policy's spec.
void parse_param_assignment(const PolicyInfo& info, const std::string& assignment, nlohmann::json& params);
std::unique_ptr<CachePolicy> make_policy(const std::string& name, const nlohmann::json& given, int layers,
                                         int kv_heads, int budget);
// A description of every policy and parameter, for --help and docs.
std::string policies_help();

}  // namespace kvlab
