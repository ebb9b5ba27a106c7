// The whole model on the CUDA backend, on the three tiny checkpoints (datasets/models) and
// their Hugging Face goldens (tests/golden): logits against the CPU backend, greedy tokens
// against transformers, CUDA-graph replay against eager launches, and the slots each cache
// policy keeps against the CPU's.
//
// Error bounds. The CUDA backend keeps weights and KV in bf16 and rounds each prefill matmul's
// input (and the prefill attention's q and softmax weights, and the MLP's gate and up) to bf16;
// decode steps keep fp32 activations. So it is compared with a CPU model whose weights were rounded to bf16 the same
// way (for llama, whose checkpoint is bf16, that is the checkpoint itself), and what is left is
// the CUDA path's own rounding:
//   prefill (the prompt's logits): per layer about seven bf16 roundings (matmul inputs, K and V
//     storage, q and p in attention, gate and up), each at most 2^-9 and ~1.1e-3 RMS relative;
//     over three layers, in quadrature, ~5.2e-3 RMS relative to logits of RMS ~1. Measured on an
//     H100 (2026-11-24, five roundings): relative L2 6.1e-3 (llama), 3.8e-3 (qwen2), 5.9e-3
//     (qwen3), and a largest error over the 147k logits of 0.0354, 0.0136, 0.0302: about 6
//     sigma, so the tails are heavier than Gaussian; on an H200 with bf16 gate and up
//     (2026-12-03): 6.8e-3, 4.3e-3, 6.5e-3, largest 0.0392, 0.0165, 0.0358. kPrefillLogitBound
//     = 0.06 is ~9x that RMS and 1.5x the largest; a wrong row, mask or position moves logits
//     by O(1).
//   decode (each step's logits): fp32 activations and exact GEMVs; only the prompt's bf16 K/V
//     and the new token's K/V rounding remain. Measured 0.0090, 0.0026, 0.0175 at most;
//     kDecodeLogitBound = 0.03.
// Against transformers (fp32 weights), add what separates that CPU model from HF: 1e-4 for
// llama (tests/test_model_golden.cpp's bound), plus, for qwen2 (fp32 checkpoint) and qwen3
// (fp16), the effect of rounding their weights to bf16, measured on the CPU (fp32 weights vs
// the same rounded to bf16, golden prompt and 63 teacher-forced decode steps): max 0.0150 for
// qwen2, 0.0541 for qwen3 (fp16 keeps 3 more mantissa bits than bf16), bounded with 1.5x room.
// A greedy step is checkable when HF's top-1 minus top-2 margin exceeds twice the bound of its
// path (prefill for step 0, decode after): then no error within the bound can swap them.
// Re-rotated keys (policies that renumber positions) are rounded to bf16 at every compaction
// that moves them; after m moves a key carries ~sqrt(m) * 1.1e-3 relative error, so runs with
// re-rotation get kRenumberedLogitBound (measured 0.043 and 0.052 over 48 steps).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "cache/cached_sequence.h"
#include "cache/registry.h"
#include "cache/snapkv.h"
#include "gpu/backend_pair.h"
#include "model/loaded_model.h"
#include "model/safetensors.h"
#include "golden_checkpoint.h"
#include "kv_slots.h"
#include "test_support.h"

namespace kvlab {
namespace {

using gpu_testing::max_abs_diff;
using gpu_testing::rel_error;

constexpr double kPrefillLogitBound = 0.06;
constexpr double kDecodeLogitBound = 0.03;
constexpr double kCpuVsHf = 1e-4;
constexpr double kRenumberedLogitBound = 0.1;
constexpr int kDecodeSteps = 64;

// |CUDA logit - HF logit| at most, for a path's bound.
double hf_bound(const std::string& arch, double path_bound) {
  const double weight_rounding = arch == "qwen2" ? 0.025 : arch.rfind("qwen3", 0) == 0 ? 0.08 : 0.0;
  return path_bound + kCpuVsHf + weight_rounding;
}

using testing::Golden;
using testing::load_golden;
using testing::model_dir;
using testing::written_slots;

// The CPU model as the CUDA backend holds it: every weight rounded to bf16.
void round_weights_to_bf16(const ModelWeights& w) {
  auto round = [](const Tensor& t) {
    if (t.empty()) return;  // absent (biases, q/k norms)
    for (int64_t i = 0; i < t.numel(); i++) t.ptr<float>()[i] = bf16_to_f32(f32_to_bf16(t.ptr<float>()[i]));
  };
  round(w.embed);
  round(w.final_norm);
  if (w.lm_head.data != w.embed.data) round(w.lm_head);
  for (const LayerWeights& l : w.layers)
    for (const Tensor* t : {&l.input_norm, &l.post_attention_norm, &l.q, &l.k, &l.v, &l.o, &l.q_bias, &l.k_bias,
                            &l.v_bias, &l.q_norm, &l.k_norm, &l.gate, &l.up, &l.down})
      round(*t);
}

std::vector<int32_t> iota(int n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

int argmax(const std::vector<float>& v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

class CudaModel : public gpu_testing::BackendPair {
 protected:
  static LoadedModel gpu_model(const std::string& arch) { return load_model(model_dir(arch), gpu(), 1024, false); }
  static LoadedModel cpu_model(const std::string& arch, bool bf16_weights) {
    LoadedModel m = load_model(model_dir(arch), cpu(), 1024, false);
    if (bf16_weights) round_weights_to_bf16(m.model->weights());
    return m;
  }
};

class CudaModelArch : public CudaModel, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    CudaModel::SetUp();
    if (IsSkipped()) return;
    if (const std::string why = testing::golden_missing(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
};

// The prompt in uneven chunks (the prefill kernels, then 3 tokens through the split-K path,
// then the rest), then 64 greedy steps fed HF's own tokens, so every step stays comparable.
TEST_P(CudaModelArch, LogitsMatchCpuAndGreedyTokensMatchTransformers) {
  const std::string arch = GetParam();
  const Golden g = load_golden(arch);
  LoadedModel mg = gpu_model(arch), m16 = cpu_model(arch, true), m32 = cpu_model(arch, false);
  const int prompt = int(g.prompt.size()), vocab = mg.config.vocab_size;
  KVCache cg = mg.model->new_cache(prompt + kDecodeSteps), c16 = m16.model->new_cache(prompt + kDecodeSteps),
          c32 = m32.model->new_cache(prompt + kDecodeSteps);
  const double prefill_bound = hf_bound(arch, kPrefillLogitBound), decode_bound = hf_bound(arch, kDecodeLogitBound);

  std::vector<float> lg, l16, l32;
  Tensor last;  // the GPU's logits of the last prompt token
  const std::vector<int> cuts = {0, 100, 177, 180, prompt};
  for (size_t c = 0; c + 1 < cuts.size(); c++) {
    const std::vector<int32_t> ids(g.prompt.begin() + cuts[c], g.prompt.begin() + cuts[c + 1]);
    std::vector<int32_t> pos(ids.size());
    std::iota(pos.begin(), pos.end(), cuts[c]);
    Tensor t = mg.model->forward(ids, pos, cg, Logits::All);
    const std::vector<float> a = gpu().to_host_f32(t),
                             b = cpu().to_host_f32(m16.model->forward(ids, pos, c16, Logits::All)),
                             d = cpu().to_host_f32(m32.model->forward(ids, pos, c32, Logits::All));
    lg.insert(lg.end(), a.begin(), a.end());
    l16.insert(l16.end(), b.begin(), b.end());
    l32.insert(l32.end(), d.begin(), d.end());
    last = t.slice(int64_t(ids.size()) - 1, 1);
  }
  const double prompt_err = max_abs_diff(lg, l16), prompt_hf = max_abs_diff(lg, g.logits);
  EXPECT_LE(prompt_err, kPrefillLogitBound) << arch << " prompt logits vs CPU";
  EXPECT_LE(prompt_hf, prefill_bound) << arch << " prompt logits vs HF";
  EXPECT_LE(max_abs_diff(l32, g.logits), kCpuVsHf) << arch << " CPU fp32 vs HF (the golden test's bound)";

  Tensor next = gpu().alloc({1}, DType::I32);
  double decode_err = 0, decode_hf = 0;
  int checkable = 0, agree = 0;
  std::vector<float> step_g(lg.end() - vocab, lg.end()), step_32(l32.end() - vocab, l32.end());
  for (int s = 0; s < kDecodeSteps; s++) {
    if (s > 0) {
      const std::vector<int32_t> id = {g.greedy[size_t(s) - 1]}, pos = {prompt + s - 1};
      last = mg.model->forward(id, pos, cg, Logits::Last);
      step_g = gpu().to_host_f32(last);
      const std::vector<float> b = cpu().to_host_f32(m16.model->forward(id, pos, c16, Logits::Last));
      step_32 = cpu().to_host_f32(m32.model->forward(id, pos, c32, Logits::Last));
      decode_err = std::max(decode_err, max_abs_diff(step_g, b));
    }
    const double bound = s == 0 ? prefill_bound : decode_bound;
    const double hf_err = max_abs_diff(step_g, step_32) + kCpuVsHf;
    EXPECT_LE(hf_err, bound) << arch << " step " << s << " logits vs HF, through the CPU fp32 model";
    if (s > 0) decode_hf = std::max(decode_hf, hf_err);
    gpu().argmax(last, next);
    int32_t id = -1;
    gpu().read(next, &id, sizeof id);
    EXPECT_EQ(id, argmax(step_g)) << "device argmax, step " << s;
    agree += id == g.greedy[size_t(s)];
    if (g.margin[size_t(s)] > 2 * bound) {
      checkable++;
      EXPECT_EQ(id, g.greedy[size_t(s)]) << arch << " step " << s << ": HF's margin " << g.margin[size_t(s)]
                                         << " exceeds twice the bound " << bound;
    }
  }
  EXPECT_LE(decode_err, kDecodeLogitBound) << arch << " decode logits vs CPU";
  std::printf(
      "%s: max |logit cuda - cpu(bf16 weights)| prompt %.3g (rel L2 %.2g), decode %.3g; vs HF prompt %.3g, decode "
      "<= %.3g; greedy: %d of %d steps checkable (HF margin > %.3f, step 0 > %.3f), all equal; %d of %d agree "
      "overall\n",
      arch.c_str(), prompt_err, rel_error(lg, l16), decode_err, prompt_hf, decode_hf, checkable, kDecodeSteps,
      2 * decode_bound, 2 * prefill_bound, agree, kDecodeSteps);
}

// A prefill that wants the last token's logits or none (kvlab-bench, tasks) runs the last
// layer's attention, o and MLP on the last row alone, its attention through the decode path:
// its last logits stay within the prefill bound of the CPU's, its cache is bitwise the one a
// forward with every row's logits leaves, and so is the next decode step's logits.
TEST_P(CudaModelArch, PrefillWithoutEveryRowsLogitsKeepsLastLogitsAndCache) {
  const std::string arch = GetParam();
  const Golden g = load_golden(arch);
  LoadedModel mg = gpu_model(arch), m16 = cpu_model(arch, true);
  const int prompt = int(g.prompt.size()), vocab = mg.config.vocab_size;
  KVCache pruned = mg.model->new_cache(prompt + 1), full = mg.model->new_cache(prompt + 1),
          c16 = m16.model->new_cache(prompt);
  std::vector<float> last, cpu_last;
  const std::vector<int> cuts = {0, 100, 177, 180, prompt};  // the 3-token chunk: the GEMV path
  for (size_t c = 0; c + 1 < cuts.size(); c++) {
    const std::vector<int32_t> ids(g.prompt.begin() + cuts[c], g.prompt.begin() + cuts[c + 1]);
    std::vector<int32_t> pos(ids.size());
    std::iota(pos.begin(), pos.end(), cuts[c]);
    const bool final_chunk = c + 2 == cuts.size();
    const Tensor t = mg.model->forward(ids, pos, pruned, final_chunk ? Logits::Last : Logits::None);
    if (final_chunk) last = gpu().to_host_f32(t);
    mg.model->forward(ids, pos, full, Logits::All);
    const Tensor t16 = m16.model->forward(ids, pos, c16, Logits::Last);
    if (final_chunk) cpu_last = cpu().to_host_f32(t16);
  }
  ASSERT_EQ(last.size(), size_t(vocab));
  EXPECT_LE(max_abs_diff(last, cpu_last), kPrefillLogitBound) << arch;
  auto slots = [&](const Tensor& t) { return written_slots(gpu(), t, prompt); };
  for (size_t l = 0; l < size_t(mg.config.num_layers); l++) {
    EXPECT_EQ(slots(pruned.k[l]), slots(full.k[l])) << arch << " layer " << l;
    EXPECT_EQ(slots(pruned.v[l]), slots(full.v[l])) << arch << " layer " << l;
  }
  const std::vector<int32_t> next = {g.greedy[0]}, next_pos = {prompt};
  const std::vector<float> a = gpu().to_host_f32(mg.model->forward(next, next_pos, pruned, Logits::Last)),
                           b = gpu().to_host_f32(mg.model->forward(next, next_pos, full, Logits::Last));
  EXPECT_EQ(a, b) << arch;
  std::printf("%s: last logits after a pruned last layer vs CPU %.3g\n", arch.c_str(), max_abs_diff(last, cpu_last));
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaModelArch, ::testing::Values("llama", "qwen2", "qwen3", "qwen3-yarn"),
                         [](const auto& info) { return info.param == "qwen3-yarn" ? "qwen3_yarn" : info.param; });

// A CUDA backend that runs recorded sequences eagerly.
std::unique_ptr<Backend> eager_backend() {
  setenv("KVLAB_CUDA_GRAPH", "0", 1);
  auto b = make_backend(BackendKind::CUDA);
  unsetenv("KVLAB_CUDA_GRAPH");
  return b;
}

CacheSpec spec(const std::string& policy, const std::string& budget, nlohmann::json params = nlohmann::json::object()) {
  CacheSpec s;
  s.policy = policy;
  s.budget = budget;
  s.params = std::move(params);
  return s;
}

// The decode step replayed as a graph computes exactly what its eager launches compute, also
// with scores accumulating in it (H2O) and with compaction between replays.
TEST_F(CudaModel, GraphReplayIsBitwiseEager) {
  auto eager = eager_backend();
  ASSERT_NE(eager->description().find("graphs off"), std::string::npos) << eager->description();
  const Golden g = load_golden("qwen3");
  LoadedModel mg = gpu_model("qwen3");
  LoadedModel me = load_model(model_dir("qwen3"), *eager, 1024, false);
  for (const CacheSpec& s : {CacheSpec{}, spec("h2o", "64"), spec("streaming", "36"), spec("snapkv", "64")}) {
    CachedSequence a(*mg.model, s, int(g.prompt.size()), 24), b(*me.model, s, int(g.prompt.size()), 24);
    std::vector<float> la = a.prefill(g.prompt), lb = b.prefill(g.prompt);
    for (int step = 0; step < 24; step++) {
      ASSERT_EQ(la, lb) << s.policy << " step " << step;
      for (int l = 0; l < 3; l++)
        for (int h = 0; h < 2; h++) ASSERT_EQ(a.kept(l, h), b.kept(l, h)) << s.policy << " step " << step;
      la = a.step(g.greedy[size_t(step)]);
      lb = b.step(g.greedy[size_t(step)]);
    }
  }
}

// Every kernel is launched as a programmatic dependent (kernels/launch.cuh): it starts before
// the kernel before it has ended and must wait before reading what that one writes. A read
// ahead of its wait sees stale values, so the logits of a prompt and 40 greedy steps, under
// policies that evict, compact and accumulate scores and with LeanK's pruned middle, must be
// bitwise those of plain launches. The switch (KVLAB_CUDA_PDL=0) is read once per process, so
// each run is its own kvlab-generate; the dumps hold every logit at round-trip precision.
TEST_F(CudaModel, ProgrammaticLaunchesAreBitwisePlainLaunches) {
  const std::string dir = testing::temp_dir(), src = testing::source_dir();
  std::string prompt;
  for (int i = 0; i < 300; i++) prompt += (i ? "," : "") + std::to_string(10 + (i * 7919) % 4000);
  const std::string base = testing::bin_dir() + "/kvlab-generate --backend cuda --model " + src +
                           "/datasets/models/kvlab-default --prompt-ids " + prompt +
                           " --max-new-tokens 40 --ignore-eos --dump-logits ";
  const std::string mask = " --leank-mask " + src + "/datasets/leank/kvlab-default/mask_est0.5.safetensors";
  const std::vector<std::string> runs = {"", " --cache h2o --budget 128 --interval 4",
                                         " --cache lacache --budget 128 --interval 4", " --cache snapkv --budget 128",
                                         mask, " --cache h2o --budget 200 --interval 4" + mask};
  for (const std::string& flags : runs) {
    std::string dumps[2];
    for (int pdl = 0; pdl < 2; pdl++) {
      const std::string path = dir + "/logits" + std::to_string(pdl) + ".json";
      const testing::CommandResult r =
          testing::run_command("KVLAB_CUDA_PDL=" + std::to_string(pdl) + " " + base + path + flags);
      ASSERT_EQ(r.exit_code, 0) << flags << "\n" << r.err;
      dumps[pdl] = testing::read_file(path);
    }
    EXPECT_GT(dumps[0].size(), 1000u) << flags;
    EXPECT_TRUE(dumps[0] == dumps[1]) << "logits differ with programmatic launches:" << flags;
  }
}

// Position-based policies choose slots from positions alone, so CUDA and CPU must keep exactly
// the same ones at every step; the logits stay within the bound. The sequences are fed the
// CPU's greedy tokens, so they see the same inputs whatever the GPU would pick.
TEST_F(CudaModel, PositionPoliciesKeepTheCpuSlots) {
  const Golden g = load_golden("llama");
  LoadedModel mg = gpu_model("llama"), mc = cpu_model("llama", true);
  struct Run {
    std::string what;
    CacheSpec spec;
    bool renumbered;
  };
  std::vector<Run> runs = {
      {"streaming, renumbered", spec("streaming", "36"), true},
      {"streaming, original positions, streaming prefill", spec("streaming", "36", {{"positions", "original"}}), false},
      {"lacache, token by token", spec("lacache", "64", {{"span", 2}}), true}};
  runs[1].spec.streaming_prefill = true;
  runs[1].spec.chunk = 64;
  runs[2].spec.streaming_prefill = true;
  runs[2].spec.chunk = 1;
  for (const Run& r : runs) {
    const int steps = 48;
    CachedSequence sg(*mg.model, r.spec, int(g.prompt.size()), steps),
        sc(*mc.model, r.spec, int(g.prompt.size()), steps);
    std::vector<float> lg = sg.prefill(g.prompt), lc = sc.prefill(g.prompt);
    double worst = 0;
    for (int step = 0;; step++) {
      worst = std::max(worst, max_abs_diff(lg, lc));
      for (int l = 0; l < 3; l++)
        for (int h = 0; h < 2; h++) ASSERT_EQ(sg.kept(l, h), sc.kept(l, h)) << r.what << ", step " << step;
      if (step == steps) break;
      const int32_t id = int32_t(argmax(lc));
      lg = sg.step(id);
      lc = sc.step(id);
    }
    // The prompt's last logits are among them: the prefill bound.
    EXPECT_LE(worst, r.renumbered ? kRenumberedLogitBound : kPrefillLogitBound) << r.what;
    std::printf("%s: same slots as the CPU at prefill and %d steps; max |logit cuda - cpu| %.3g\n", r.what.c_str(),
                steps, worst);
  }
}

// Score-based policies rank slots by accumulated attention, which the two backends compute from
// slightly different numbers (bf16 KV and prefill activations on CUDA). The test recomputes the
// scores each backend's store saw at the prefill compaction (same model, chunking and capacity,
// so bitwise the same), and checks: (1) each store keeps exactly what the policy picks from its
// own backend's scores; (2) the scores agree within 5e-2 relative; (3) wherever the two keep
// different slots, the CPU's ranking there is a near-tie: the gap between the last kept and the
// first evicted value is within twice the largest GPU-CPU difference of that head's values.
// H2O then evicts at every decode step; the steps are compared until the first divergence,
// which ties make possible, and reported.
TEST_F(CudaModel, ScorePoliciesKeepTheCpuSlotsWhereScoresAllow) {
  const Golden g = load_golden("llama");
  LoadedModel mg = gpu_model("llama"), mc = cpu_model("llama", true);
  const ModelConfig& c = mg.config;
  const int prompt = int(g.prompt.size()), heads = c.num_kv_heads;
  for (const std::string policy : {"snapkv", "h2o"}) {
    const CacheSpec s = spec(policy, "64");
    const int steps = 32;
    CachedSequence sg(*mg.model, s, prompt, steps), sc(*mc.model, s, prompt, steps);
    const int store = sg.capacity();  // the whole prompt's; the store shrinks to the budget after it
    sg.prefill(g.prompt);
    std::vector<float> lc = sc.prefill(g.prompt);

    // The scores each store saw, recomputed.
    const std::unique_ptr<CachePolicy> probe = make_policy(policy, nlohmann::json::object(), c.num_layers, heads, 64);
    const int first_query = probe->score_need() == ScoreNeed::PromptWindow ? prompt - probe->score_window() : 0;
    std::vector<float> scores[2];
    KeepPlan plans[2];
    const std::vector<std::vector<int32_t>> positions(size_t(c.num_layers * heads), iota(prompt));
    for (int i = 0; i < 2; i++) {
      Transformer& m = i ? *mg.model : *mc.model;
      Backend& b = i ? gpu() : cpu();
      KVCache cache = m.new_cache(store);
      cache.score = b.alloc({c.num_layers, heads, store}, DType::F32);
      const std::vector<float> zeros(size_t(cache.score.numel()), 0.0f);
      b.write(cache.score, zeros.data(), zeros.size() * 4);
      ForwardExtras extras;
      extras.score_first_query = first_query;
      m.forward(g.prompt, iota(prompt), cache, Logits::Last, extras);
      scores[i] = b.to_host_f32(cache.score);
      CacheState state;
      state.layers = c.num_layers;
      state.kv_heads = heads;
      state.tokens_seen = prompt;
      state.positions = &positions;
      state.scores = &scores[i];
      state.capacity = store;
      std::optional<KeepPlan> plan =
          make_policy(policy, nlohmann::json::object(), c.num_layers, heads, 64)->select(state);
      ASSERT_TRUE(plan.has_value());
      plans[i] = *plan;
    }
    EXPECT_LE(rel_error(scores[1], scores[0]), 5e-2) << policy << " scores";
    int same = 0;
    for (int l = 0; l < c.num_layers; l++) {
      for (int h = 0; h < heads; h++) {
        const size_t lh = size_t(l * heads + h);
        EXPECT_EQ(sc.kept(l, h), plans[0][lh]) << policy << ": the CPU store keeps its policy's choice";
        EXPECT_EQ(sg.kept(l, h), plans[1][lh]) << policy << ": the CUDA store keeps its policy's choice";
        if (sg.kept(l, h) == sc.kept(l, h)) {
          same++;
          continue;
        }
        // The values the policy ranked (SnapKV: pooled votes over the prefix; H2O: scores
        // of the slots before the recent window), and how many it took.
        const int64_t row = int64_t(lh) * store;
        const int ranked = policy == "snapkv" ? prompt - probe->score_window() : prompt - 32;
        const int taken = 64 - (policy == "snapkv" ? probe->score_window() : 32);
        std::vector<float> v[2];
        for (int i = 0; i < 2; i++) {
          const float* sr = scores[i].data() + row;
          v[i] = policy == "snapkv" ? pool_votes(sr, ranked, 7, true) : std::vector<float>(sr, sr + ranked);
        }
        std::vector<float> sorted = v[0];
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        const double gap = double(sorted[size_t(taken) - 1]) - sorted[size_t(taken)];
        EXPECT_LE(gap, 2 * max_abs_diff(v[1], v[0])) << policy << " layer " << l << " head " << h;
      }
    }
    int identical_steps = 0;
    for (int step = 0; step < steps; step++) {
      bool equal = true;
      for (int l = 0; l < c.num_layers; l++)
        for (int h = 0; h < heads; h++) equal = equal && sg.kept(l, h) == sc.kept(l, h);
      if (!equal) break;
      identical_steps++;
      const int32_t id = int32_t(argmax(lc));
      sg.step(id);
      lc = sc.step(id);
    }
    std::printf(
        "%s: prefill compaction keeps the same slots in %d of %d heads; decode steps with identical slots "
        "before the first difference: %d of %d\n",
        policy.c_str(), same, c.num_layers * heads, identical_steps, steps);
  }
}

}  // namespace
}  // namespace kvlab
