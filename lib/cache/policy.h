#pragma once
// Cache policies: after prefill and after decode steps, a policy looks at what every
// (layer, KV head) keeps and says which slots stay. It never touches tensors: the KV store
// (CachedSequence) compacts on the backend.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvlab {

enum class CachePhase { Prefill, Decode };

// What a policy sees. Slot order is the cache's order: older first, the newest last.
struct CacheState {
  int layers = 0;
  int kv_heads = 0;
  CachePhase phase = CachePhase::Prefill;
  int64_t tokens_seen = 0;  // tokens fed so far (original positions 0 .. tokens_seen-1)
  // Per (layer * kv_heads + head): original positions of the kept slots, in slot order.
  const std::vector<std::vector<int32_t>>* positions = nullptr;
  // [layers, kv_heads, capacity] accumulated attention per slot, when the policy asked for it.
  const std::vector<float>* scores = nullptr;
  int capacity = 0;

  const std::vector<int32_t>& kept(int layer, int head) const { return (*positions)[size_t(layer * kv_heads + head)]; }
  const float* score_row(int layer, int head) const {
    return scores->data() + (int64_t(layer) * kv_heads + head) * capacity;
  }
};

// Per (layer * kv_heads + head): slot indices to keep, strictly ascending.
using KeepPlan = std::vector<std::vector<int32_t>>;

enum class ScoreNeed {
  None,          // position-based policies
  AllQueries,    // every query's attention accumulates (H2O)
  PromptWindow,  // only the last score_window() prompt queries (SnapKV, PyramidKV)
};

class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  virtual std::string name() const = 0;
  // Keys live rotated at their slot index and are re-rotated when slots move (StreamingLLM's
  // and LaCache's position shift); otherwise tokens keep their original positions.
  virtual bool renumbers_positions() const { return false; }
  virtual ScoreNeed score_need() const { return ScoreNeed::None; }
  virtual int score_window() const { return 0; }
  // Most slots any (layer, head) holds right after select(); sizes the cache.
  virtual int max_kept_tokens() const = 0;
  // Whether select() ever evicts during decoding (SnapKV-style policies compress the prompt only).
  virtual bool evicts_during_decode() const { return true; }
  // nullopt: keep everything as it is.
  virtual std::optional<KeepPlan> select(const CacheState& state) = 0;
};

// One typed, documented, validated parameter of a policy.
struct ParamSpec {
  enum Kind { Int, Float, String };
  std::string name;
  Kind kind = Int;
  nlohmann::json default_value;  // null: derived from the budget (documented in help)
  std::string help;
  double min = -1e300, max = 1e300;
  std::vector<std::string> choices;  // String parameters
};

// What a policy is built from: the model's shape, the resolved budget and parameters.
struct PolicyArgs {
  int layers = 0;
  int kv_heads = 0;
  int budget = 0;                 // tokens per (layer, head); 0 = no budget given
  nlohmann::json params;          // validated, defaults filled in (derived ones null)

  int get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  bool has(const std::string& name) const { return params.contains(name) && !params[name].is_null(); }
};

struct PolicyInfo {
  std::string name;
  std::string summary;
  bool needs_budget = true;
  std::vector<ParamSpec> params;
  std::unique_ptr<CachePolicy> (*make)(const PolicyArgs&);
};

}  // namespace kvlab
