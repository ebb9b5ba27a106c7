#include "cache/registry.h"

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/json_excerpt.h"

namespace kvlab {

extern const PolicyInfo kFullPolicy;
extern const PolicyInfo kStreamingLlmPolicy;
extern const PolicyInfo kH2oPolicy;
extern const PolicyInfo kSnapKvPolicy;
extern const PolicyInfo kPyramidKvPolicy;
extern const PolicyInfo kLaCachePolicy;

const std::vector<PolicyInfo>& cache_policies() {
  static const std::vector<PolicyInfo> all = {kFullPolicy,   kStreamingLlmPolicy, kH2oPolicy,
                                              kSnapKvPolicy, kPyramidKvPolicy,    kLaCachePolicy};
  return all;
}

namespace {
std::string policy_names() {
  std::string s;
  for (const PolicyInfo& p : cache_policies()) s += (s.empty() ? "" : ", ") + p.name;
  return s;
}
std::string param_names(const PolicyInfo& info) {
  std::string s;
  for (const ParamSpec& p : info.params) s += (s.empty() ? "" : ", ") + p.name;
  return s.empty() ? "none" : s;
}
}  // namespace

const PolicyInfo& find_policy(const std::string& name) {
  for (const PolicyInfo& p : cache_policies())
    if (p.name == name) return p;
  fail("unknown cache policy \"" + name + "\" (choose one of: " + policy_names() + ")");
}

nlohmann::json resolve_params(const PolicyInfo& info, const nlohmann::json& given) {
  if (!given.is_null() && !given.is_object()) fail("cache parameters for " + info.name + " must be an object");
  nlohmann::json out = nlohmann::json::object();
  for (const ParamSpec& spec : info.params) out[spec.name] = spec.default_value;
  if (given.is_null()) return out;
  for (auto& [key, value] : given.items()) {
    const ParamSpec* spec = nullptr;
    for (const ParamSpec& s : info.params)
      if (s.name == key) spec = &s;
    std::string where = "cache policy " + info.name + ": parameter \"" + key + "\"";
    if (!spec) fail(where + " does not exist (valid: " + param_names(info) + ")");
    switch (spec->kind) {
      case ParamSpec::Int:
        if (!value.is_number_integer()) fail(where + " must be an integer, got " + json_excerpt(value));
        break;
      case ParamSpec::Float:
        if (!value.is_number()) fail(where + " must be a number, got " + json_excerpt(value));
        break;
      case ParamSpec::String: {
        if (!value.is_string()) fail(where + " must be a string, got " + json_excerpt(value));
        bool ok = spec->choices.empty();
        for (const std::string& c : spec->choices) ok |= c == value.get<std::string>();
        if (!ok) {
          std::string choices;
          for (const std::string& c : spec->choices) choices += (choices.empty() ? "" : ", ") + c;
          fail(where + " is " + json_excerpt(value) + " (choose one of: " + choices + ")");
        }
        break;
      }
    }
    if (spec->kind != ParamSpec::String) {
      double v = value.get<double>();
      if (v < spec->min || v > spec->max) {
        std::ostringstream range;
        range << "[" << spec->min << ", " << spec->max << "]";
        fail(where + " = " + json_excerpt(value) + " is outside " + range.str());
      }
    }
    out[key] = value;
  }
  return out;
}

void parse_param_assignment(const PolicyInfo& info, const std::string& assignment, nlohmann::json& params) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--cache-param \"" + assignment + "\" must look like name=value");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  for (const ParamSpec& spec : info.params) {
    if (spec.name != key) continue;
    if (spec.kind == ParamSpec::String) {
      params[key] = text;
    } else {
      nlohmann::json v = nlohmann::json::parse(text, nullptr, false);
      if (v.is_discarded() || !v.is_number())
        fail("--cache-param " + key + ": \"" + text + "\" is not a number");
      params[key] = v;
    }
    return;
  }
  fail("cache policy " + info.name + ": parameter \"" + key + "\" does not exist (valid: " + param_names(info) + ")");
}

int PolicyArgs::get_int(const std::string& name) const { return params.at(name).get<int>(); }
double PolicyArgs::get_float(const std::string& name) const { return params.at(name).get<double>(); }
std::string PolicyArgs::get_string(const std::string& name) const { return params.at(name).get<std::string>(); }

std::unique_ptr<CachePolicy> make_policy(const std::string& name, const nlohmann::json& given, int layers,
                                         int kv_heads, int budget) {
  const PolicyInfo& info = find_policy(name);
  if (info.needs_budget && budget <= 0) fail("cache policy " + name + " needs a budget (--budget)");
  PolicyArgs args{layers, kv_heads, budget, resolve_params(info, given)};
  return info.make(args);
}

std::string policies_help() {
  std::ostringstream s;
  for (const PolicyInfo& p : cache_policies()) {
    s << "  " << p.name << ": " << p.summary << "\n";
    for (const ParamSpec& spec : p.params) {
      s << "      " << spec.name << " (default " << (spec.default_value.is_null() ? "derived" : spec.default_value.dump())
        << "): " << spec.help << "\n";
    }
  }
  return s.str();
}

}  // namespace kvlab
