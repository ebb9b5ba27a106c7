#pragma once
// What each run of a sweep will hold in memory, predicted before anything runs, the way
// kvlab-eval checks a run before it loads weights: the task prepares its prompts (so the context
// is exact and bad data fails now), then plan_memory with the backend's element types.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "model/config.h"
#include "model/memory_plan.h"
#include "model/tokenizer.h"
#include "sweep/resume.h"
#include "sweep/sweep_file.h"

namespace kvlab {

// cpu: f32 weights, KV and activations; cuda: bf16 weights and KV, f32 activations.
PlanDTypes backend_plan_dtypes(const std::string& backend);

class RunPlanner {
 public:
  // `eval_config` has absolute paths (eval_config_for). Error (exit code 2), prefixed by `where`,
  // for a model, tokenizer, dataset, budget or policy parameter that kvlab-eval would refuse.
  MemoryPlan plan(const nlohmann::json& eval_config, const std::string& where);

 private:
  std::map<std::string, ModelConfig> models_;  // by directory and hf_overrides
  std::map<std::string, std::unique_ptr<Tokenizer>> tokenizers_;
};

// The memory one run may use on `backend` ("cpu": available host memory; "cuda": the device's free
// memory), capped by KVLAB_MEMORY_LIMIT as kvlab-eval caps it. Asked in a child process so this
// one never holds a CUDA context the runs would compete with. nullopt, with the reason in `why`,
// when it cannot be known (no CUDA device here).
std::optional<size_t> probe_available_memory(const std::string& backend, const std::string& cuda_visible_devices,
                                             std::string& why);

struct PlannedRun {
  const SweepRun* run = nullptr;
  RunStatus status = RunStatus::ToRun;
  MemoryPlan plan;
  bool fits = true;
};

// Every run planned against what one run may use on its backend (probed once per backend; with
// `gpus`, the least any of them has).
struct MemoryCheck {
  std::vector<PlannedRun> runs;                            // the runs planned, in the order given
  std::map<std::string, std::optional<size_t>> available;  // backend -> bytes (nullopt: unknown)
  std::string unknown_why;                                 // why a backend's memory is unknown
  std::vector<const PlannedRun*> refused;                  // not done and will not fit

  std::string limits_text() const;  // "cpu 22.37 GiB"
};

// Plans the runs whose status is ToRun, or every run with `all`. Error (exit code 2) for a run
// kvlab-eval would refuse, or when a backend's memory cannot be known and `require_known`.
MemoryCheck check_memory(const Sweep& sweep, const std::vector<const SweepRun*>& runs,
                         const std::vector<RunStatus>& status, bool all, const std::vector<std::string>& gpus,
                         bool require_known);

}  // namespace kvlab
