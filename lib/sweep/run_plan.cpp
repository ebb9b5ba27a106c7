#include "sweep/run_plan.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "cache/budget.h"
#include "cache/registry.h"
#include "core/error.h"
#include "leank/demotion.h"
#include "leank/mask.h"
#include "model/transformer.h"
#include "sweep/eval_config.h"
#include "tasks/registry.h"

namespace kvlab {

PlanDTypes backend_plan_dtypes(const std::string& backend) {
  if (backend == "cuda") return {DType::BF16, DType::BF16, DType::F32, DType::BF16};
  return {DType::F32, DType::F32, DType::F32};
}

MemoryPlan RunPlanner::plan(const nlohmann::json& config, const std::string& where) {
  try {
    const std::string dir = config["model"].get<std::string>();
    const nlohmann::json overrides = config.value("hf_overrides", nlohmann::json());
    const std::string model_key = dir + "\n" + overrides.dump();
    auto m = models_.find(model_key);
    if (m == models_.end()) m = models_.emplace(model_key, load_model_config(dir, overrides)).first;
    const ModelConfig& model = m->second;
    const std::string tok_path = config.value("tokenizer", dir + "/tokenizer.json");
    auto t = tokenizers_.find(tok_path);
    if (t == tokenizers_.end())
      t = tokenizers_.emplace(tok_path, std::make_unique<Tokenizer>(Tokenizer::load(tok_path))).first;
    const Tokenizer& tok = *t->second;
    if (tok.vocab_size() > model.vocab_size)
      fail(tok_path + ": tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model's vocab_size is " +
           std::to_string(model.vocab_size));

    const TaskInfo& task = find_task(config["task"].get<std::string>());
    const CacheSpec cache = eval_cache_spec(config, where);
    const PlanDTypes dtypes = backend_plan_dtypes(config["backend"].get<std::string>());
    const size_t kv_bytes_per_token = kvlab::kv_bytes_per_token(model, dtypes.kv);
    const nlohmann::json options = eval_task_options(task, config, where, "", "");
    const PreparedTask prepared = task.prepare(options, {tok, model, cache, kv_bytes_per_token});
    // What the cache store checks when the run builds it: the budget's form and size, and the
    // policy's parameters against the model's shape.
    const int budget =
        cache.budget.empty() ? 0 : resolve_budget(cache.budget, prepared.context_tokens, kv_bytes_per_token);
    make_policy(cache.policy, cache.params, model.num_layers, model.num_kv_heads, budget);
    MemoryPlan plan = plan_memory(model, prepared.context_tokens, kDefaultPrefillChunk, dtypes, prepared.all_logits);
    // A LeanK mask is checked against the model now, and its middle region counted.
    if (!cache.channel_mask.empty())
      plan_leank(plan, read_mask(cache.channel_mask, ModelFingerprint::of(model), dir), cache.leank);
    return plan;
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind(where, 0) == 0) throw;
    fail(where + ": " + message, e.code());
  }
}

std::optional<size_t> probe_available_memory(const std::string& backend, const std::string& cuda_visible_devices,
                                             std::string& why) {
  int fds[2];
  if (pipe(fds) != 0) fail(std::string("pipe failed: ") + std::strerror(errno), kExitInternal);
  const pid_t pid = fork();
  if (pid < 0) fail(std::string("fork failed: ") + std::strerror(errno), kExitInternal);
  if (pid == 0) {
    close(fds[0]);
    std::string reply;
    try {
      if (!cuda_visible_devices.empty()) setenv("CUDA_VISIBLE_DEVICES", cuda_visible_devices.c_str(), 1);
      auto b = make_backend(backend_kind_from_name(backend));
      reply = "ok " + std::to_string(available_memory(*b));
    } catch (const std::exception& e) {
      reply = std::string("error ") + e.what();
    }
    ssize_t n = write(fds[1], reply.data(), reply.size());
    _exit(n == ssize_t(reply.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string reply;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    reply.append(buf, size_t(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (reply.rfind("ok ", 0) == 0) return std::stoull(reply.substr(3));
  why = reply.rfind("error ", 0) == 0 ? reply.substr(6) : "the memory probe died";
  return std::nullopt;
}

std::string MemoryCheck::limits_text() const {
  std::string s;
  for (auto& [backend, a] : available)
    s += (s.empty() ? "" : ", ") + backend + " " + (a ? format_bytes(*a) : "unknown");
  return s.empty() ? "not probed" : s;
}

MemoryCheck check_memory(const Sweep& sweep, const std::vector<const SweepRun*>& runs,
                         const std::vector<RunStatus>& status, bool all, const std::vector<std::string>& gpus,
                         bool require_known) {
  MemoryCheck check;
  RunPlanner planner;
  for (size_t i = 0; i < runs.size(); i++) {
    if (!all && status[i] != RunStatus::ToRun) continue;
    PlannedRun p{runs[i], status[i], {}, true};
    const nlohmann::json config = eval_config_for(sweep, *p.run);
    const std::string backend = config["backend"].get<std::string>();
    if (!check.available.count(backend)) {
      std::optional<size_t> least;
      for (const std::string& gpu : backend == "cuda" && !gpus.empty() ? gpus : std::vector<std::string>{""}) {
        std::string why;
        const std::optional<size_t> a = probe_available_memory(backend, gpu, why);
        if (!a) {
          check.unknown_why = "backend " + backend + ": " + why;
          if (require_known) fail(check.unknown_why + " (no run can start)");
          least.reset();
          break;
        }
        least = least ? std::min(*least, *a) : *a;
      }
      check.available[backend] = least;
    }
    p.plan = planner.plan(config, sweep.path + ": run " + p.run->id + " (" + run_label(sweep, *p.run) + ")");
    const std::optional<size_t>& a = check.available[backend];
    p.fits = !a || p.plan.total() <= *a;
    check.runs.push_back(p);
  }
  for (const PlannedRun& p : check.runs)
    if (!p.fits && p.status != RunStatus::Done) check.refused.push_back(&p);
  return check;
}

}  // namespace kvlab
