// kvlab-bench's measurement loop on the tiny model (CPU): what a row records about memory and
// policy calls. Speed itself is measured by the benchmark, never asserted here.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "leank/mask.h"
#include "model/loaded_model.h"
#include "run/speed_bench.h"
#include "test_support.h"

namespace kvlab {
namespace {

class SpeedBench : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_cpu_backend();
    model_ = load_model(testing::source_dir() + "/datasets/models/tiny-random-llama", *backend_, 1024);
    options_.contexts = {100, 300};
    options_.decode_tokens = 12;
    options_.warmup_tokens = 4;
  }
  // K+V bytes of one token over all layers and KV heads.
  size_t kv_bytes_per_token() const {
    const ModelConfig& c = model_.model->config();
    return size_t(2 * c.num_layers * c.kv_dim()) * dtype_size(backend_->kv_dtype());
  }

  std::unique_ptr<Backend> backend_;
  LoadedModel model_;
  SpeedBenchOptions options_;
};

TEST_F(SpeedBench, FullCacheHoldsEveryTokenAndCallsNoPolicy) {
  std::vector<SpeedRow> rows = run_speed_bench(*model_.model, options_, 1e10);
  ASSERT_EQ(rows.size(), 2u);
  for (const SpeedRow& r : rows) {
    const size_t tokens = size_t(r.context + options_.warmup_tokens + options_.decode_tokens);
    EXPECT_EQ(r.kept_kv_bytes, tokens * kv_bytes_per_token()) << r.context;
    EXPECT_GE(r.kv_bytes, r.kept_kv_bytes) << "the store (with its positions) holds every token";
    EXPECT_EQ(r.compactions, 0);
    EXPECT_EQ(r.policy_fraction, 0.0);
    EXPECT_GT(r.decode_tokens_per_s, 0.0);
    EXPECT_GE(r.peak_bytes, r.kv_bytes);
  }
}

TEST_F(SpeedBench, UnderAPolicyTheRowRecordsWhatItKeepsAndWhatItsCallsCost) {
  options_.cache.policy = "streaming";
  options_.cache.budget = "64";
  options_.cache.params = {{"sinks", 4}, {"window", 60}};
  options_.cache.interval = 1;
  std::vector<SpeedRow> rows = run_speed_bench(*model_.model, options_, 1e10);
  for (const SpeedRow& r : rows) {
    EXPECT_EQ(r.kept_kv_bytes, 64 * kv_bytes_per_token()) << r.context;
    EXPECT_GE(r.kv_bytes, r.kept_kv_bytes);
    // The store as allocated once the prompt is cut to the budget: the budget plus one
    // interval's growth, K and V alike, whatever the context.
    EXPECT_EQ(r.k_bytes_allocator + r.v_bytes_allocator, size_t(64 + 1) * kv_bytes_per_token()) << r.context;
    EXPECT_EQ(r.k_bytes_allocator, r.v_bytes_allocator) << r.context;
    EXPECT_EQ(r.compactions, options_.decode_tokens) << "interval 1: one eviction per timed step";
    EXPECT_GT(r.policy_fraction, 0.0);
    EXPECT_LT(r.policy_fraction, 1.0);
    // The roofline reads the kept KV, not the context's.
    EXPECT_LT(r.bytes_per_token, decode_weight_bytes(*model_.model) + 65.0 * kv_bytes_per_token());
  }
}

// LeanK under a token policy runs inside the sequence: the allocator's K shrinks by the
// middle's pruned channels against the same policy without the mask.
TEST_F(SpeedBench, LeanKUnderAPolicyStoresFewerKBytes) {
  options_.cache.policy = "lacache";
  options_.cache.budget = "64";
  options_.cache.leank = {4, 16, 4};
  const std::vector<SpeedRow> plain = run_speed_bench(*model_.model, options_, 1e10);
  const std::string mask = testing::temp_dir() + "/bench_mask.safetensors";
  write_mask(mask, make_mask(synthetic_importance(model_.model->config(), 1), 0.5, 8, true));
  options_.cache.channel_mask = mask;
  const std::vector<SpeedRow> leank = run_speed_bench(*model_.model, options_, 1e10);
  ASSERT_EQ(plain.size(), leank.size());
  for (size_t i = 0; i < plain.size(); i++) {
    EXPECT_GT(plain[i].k_bytes_allocator, 0u);
    EXPECT_LT(leank[i].k_bytes_allocator, plain[i].k_bytes_allocator) << plain[i].context;
    EXPECT_GT(leank[i].compactions, 0) << plain[i].context;
  }
}

}  // namespace
}  // namespace kvlab
