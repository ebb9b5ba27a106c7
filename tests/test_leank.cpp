// LeanK masks: the reference's stage-2 rule on hand-computed importance, the file formats and
// their refusals, the training-free estimator on a real (tiny) model, and kvlab-leank end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "leank/estimate.h"
#include "leank/mask.h"
#include "model/loaded_model.h"
#include "model/safetensors.h"
#include "test_support.h"

namespace kvlab {
namespace {

using nlohmann::json;
using testing::run_command;

ModelFingerprint shape(int layers, int heads, int dim) {
  ModelFingerprint f;
  f.architecture = "LlamaForCausalLM";
  f.layers = layers;
  f.kv_heads = heads;
  f.head_dim = dim;
  f.hidden_size = 64;
  f.vocab_size = 512;
  return f;
}

ChannelImportance importance(int layers, int heads, int dim, std::vector<float> values) {
  ChannelImportance imp;
  imp.model = shape(layers, heads, dim);
  imp.source = kImportanceSourceTrained;
  imp.values = std::move(values);
  return imp;
}

std::vector<int32_t> kept_channels(const ChannelMask& m, int layer, int head) {
  std::vector<int32_t> out;
  for (int c = 0; c < m.model.head_dim; c++)
    if (m.kept_at(layer, head, c)) out.push_back(c);
  return out;
}

using testing::error_of;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---------------------------------------------------------------------------- the rule

TEST(LeankRule, QuantileInterpolatesLinearlyAsTorchDoes) {
  const std::vector<float> v = {7, 2, 9, 0, 5, 1, 8, 3, 6, 4};  // 0..9 shuffled
  EXPECT_FLOAT_EQ(quantile_linear(v, 0.0), 0.0f);
  EXPECT_FLOAT_EQ(quantile_linear(v, 0.5), 4.5f);    // rank 4.5: halfway between 4 and 5
  EXPECT_FLOAT_EQ(quantile_linear(v, 0.25), 2.25f);  // rank 2.25
  EXPECT_FLOAT_EQ(quantile_linear(v, 0.95), 8.55f);  // rank 8.55, the lerp from the upper end
  EXPECT_FLOAT_EQ(quantile_linear({3, 1, 2}, 0.7), 2.4f);  // rank 1.4 between 2 and 3
}

// Two layers, two heads, eight channels, alignment 4. 14 "high" values (>= 10) and 18 "low"
// ones (<= 0.5); sparsity 0.56 puts the rank at 0.56 * 31 = 17.36, between the largest low
// value (sorted[17] = 0.5) and the smallest high one (sorted[18] = 10):
// thr = 0.5 + 0.36 * 9.5 = 3.92, so cnt = the number of high values of each head.
TEST(LeankRule, HandComputedMask) {
  std::vector<float> v = {
      // layer 0 head 0: 8 high -> cnt 8 -> k 8
      100, 107, 101, 106, 102, 105, 103, 104,
      // layer 0 head 1: 3 high (channels 1, 3, 5) -> cnt 3 -> k (3 + 2) / 4 * 4 = 4: the 3 and channel 0 (0.5)
      0.5f, 10, 0.2f, 11, 0.2f, 12, 0.1f, 0.3f,
      // layer 1 head 0: 2 high (6, 7) -> cnt 2 -> k 4 (halves round up); the rest tie at 0.2:
      // the lower channel indices 0 and 1 win
      0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 20, 21,
      // layer 1 head 1: 1 high -> cnt 1 -> k (1 + 2) / 4 * 4 = 0: fully pruned
      0.3f, 0.3f, 0.3f, 30, 0.3f, 0.3f, 0.3f, 0.3f};
  ChannelMask m = make_mask(importance(2, 2, 8, v), 0.56, 4);
  EXPECT_NEAR(m.threshold, 3.92f, 1e-5f);
  EXPECT_EQ(m.kept, (std::vector<int32_t>{8, 4, 4, 0}));
  EXPECT_EQ(kept_channels(m, 0, 0), (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(kept_channels(m, 0, 1), (std::vector<int32_t>{0, 1, 3, 5}));
  EXPECT_EQ(kept_channels(m, 1, 0), (std::vector<int32_t>{0, 1, 6, 7}));
  EXPECT_TRUE(kept_channels(m, 1, 1).empty());
  EXPECT_DOUBLE_EQ(m.sparsity_achieved, 0.5);
  EXPECT_DOUBLE_EQ(m.sparsity_requested, 0.56);

  MaskStats s = mask_stats(m);
  EXPECT_EQ(s.channels_kept, 16);
  EXPECT_EQ(s.heads_pruned, 1);
  EXPECT_EQ(s.heads_full, 1);
  EXPECT_DOUBLE_EQ(s.v_reduction, 0.25);
  EXPECT_DOUBLE_EQ(s.k_reduction, 0.5);
  EXPECT_EQ(s.histogram, (std::map<int, int>{{0, 1}, {4, 2}, {8, 1}}));
  EXPECT_EQ(s.layer_kept_fraction, (std::vector<double>{0.75, 0.25}));
  EXPECT_EQ(s.layer_heads_pruned, (std::vector<int>{0, 1}));
  EXPECT_TRUE(contains(format_mask_stats(m, s), "0:1, 4:2, 8:1"));
}

TEST(LeankRule, ValuesEqualToTheThresholdCount) {
  // Sorted {1, 1, 3, 4, 5}; sparsity 0.5 -> rank 2 exactly -> thr = 3; ">=" keeps 3, 4, 5.
  ChannelMask m = make_mask(importance(1, 1, 5, {3, 1, 4, 1, 5}), 0.5, 1);
  EXPECT_FLOAT_EQ(m.threshold, 3.0f);
  EXPECT_EQ(kept_channels(m, 0, 0), (std::vector<int32_t>{0, 2, 4}));
  EXPECT_DOUBLE_EQ(m.sparsity_achieved, 0.4);
}

TEST(LeankRule, TiesAmongTheTopGoToTheLowerChannel) {
  // One head, alignment 2: 3 channels >= thr round to 4 (halves up); five of the channels tie.
  // Sorted {0, 0, 0, 1, 1, 1, 1, 1}; sparsity 0.4 -> rank 2.8 -> thr = 0 + 0.8 * 1 = 0.8.
  ChannelMask m = make_mask(importance(1, 1, 8, {1, 0, 1, 0, 1, 1, 0, 1}), 0.4, 2);
  EXPECT_EQ(m.kept_count(0, 0), 6);  // cnt 5 -> (5 + 1) / 2 * 2 = 6: the five 1s and the first 0
  EXPECT_EQ(kept_channels(m, 0, 0), (std::vector<int32_t>{0, 1, 2, 4, 5, 7}));
  // cnt 5 rounds to (5 + 4) / 8 * 8 = 8 at alignment 8, and to (5 + 2) / 4 * 4 = 4 at alignment 4,
  // where four of the five tied 1s stay: the lower channels 0, 2, 4, 5.
  EXPECT_EQ(make_mask(importance(1, 1, 8, {1, 0, 1, 0, 1, 1, 0, 1}), 0.4, 8).kept_count(0, 0), 8);
  EXPECT_EQ(kept_channels(make_mask(importance(1, 1, 8, {1, 0, 1, 0, 1, 1, 0, 1}), 0.4, 4), 0, 0),
            (std::vector<int32_t>{0, 2, 4, 5}));
}

TEST(LeankRule, SparsityZeroKeepsEverything) {
  std::vector<float> v(3 * 2 * 16);
  for (size_t i = 0; i < v.size(); i++) v[i] = float((i * 37) % 11) - 5.0f;  // negatives and ties too
  ChannelMask m = make_mask(importance(3, 2, 16, v), 0.0, 8);
  EXPECT_EQ(m.kept, std::vector<int32_t>(6, 16));
  EXPECT_EQ(m.sparsity_achieved, 0.0);
  EXPECT_EQ(mask_stats(m).heads_full, 6);
}

TEST(LeankRule, HighSparsityPrunesWholeHeads) {
  // Each head's values are its index: the global 0.9 quantile leaves only the last head.
  std::vector<float> v;
  for (int h = 0; h < 8; h++)
    for (int c = 0; c < 4; c++) v.push_back(float(h) + 0.01f * float(c));
  ChannelMask m = make_mask(importance(2, 4, 4, v), 0.9, 4);
  // rank 0.9 * 31 = 27.9: thr = 6.03 + 0.9 * (7 - 6.03), above all of head 6 and below all of head 7.
  EXPECT_EQ(m.kept, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 0, 4}));
  EXPECT_EQ(mask_stats(m).heads_pruned, 7);
  EXPECT_DOUBLE_EQ(m.sparsity_achieved, 1.0 - 4.0 / 32.0);
}

TEST(LeankRule, BadInputIsRefused) {
  ChannelImportance ok = importance(1, 2, 8, std::vector<float>(16, 1.0f));
  for (double s : {-0.1, 1.0, 1.5, std::nan("")})
    EXPECT_TRUE(contains(error_of([&] { make_mask(ok, s, 4); }), "sparsity")) << s;
  for (int a : {0, -4, 3, 16})
    EXPECT_TRUE(contains(error_of([&] { make_mask(ok, 0.5, a); }), "alignment " + std::to_string(a))) << a;
  ChannelImportance nan = ok;
  nan.values[11] = std::nanf("");
  EXPECT_TRUE(contains(error_of([&] { make_mask(nan, 0.5, 4); }), "[layer 0, head 1, channel 3] is NaN"));
  ChannelImportance inf = ok;
  inf.values[0] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(contains(error_of([&] { make_mask(inf, 0.5, 4); }), "infinite"));
  ChannelImportance short_values = ok;
  short_values.values.resize(15);
  EXPECT_TRUE(contains(error_of([&] { make_mask(short_values, 0.5, 4); }), "15 values"));
  EXPECT_EQ(error_of([&] { make_mask(ok, 0.5, 8); }), "");
}

// ---------------------------------------------------------------------------- files

ChannelMask sample_mask() {
  std::vector<float> v(2 * 2 * 8);
  for (size_t i = 0; i < v.size(); i++) v[i] = float((i * 13) % 17);
  ChannelImportance imp = importance(2, 2, 8, v);
  imp.calibration = {"datasets/text/tinyshakespeare.txt", std::string(64, 'c'), 4096};
  ChannelMask m = make_mask(imp, 0.7, 4);
  m.model.sha256 = std::string(64, 'a');
  m.importance_sha256 = std::string(64, 'b');
  return m;
}

TEST(LeankFiles, MaskRoundTripsWithItsMetadata) {
  const ChannelMask m = sample_mask();
  const std::string path = testing::temp_dir() + "/mask.safetensors";
  write_mask(path, m);
  const ChannelMask r = read_mask(path);
  EXPECT_EQ(r.keep, m.keep);
  EXPECT_EQ(r.kept, m.kept);
  EXPECT_EQ(r.sparsity_requested, 0.7);
  EXPECT_EQ(r.sparsity_achieved, m.sparsity_achieved);
  EXPECT_EQ(r.alignment, 4);
  EXPECT_EQ(r.threshold, m.threshold);
  EXPECT_EQ(r.importance_source, "trained");
  EXPECT_EQ(r.importance_sha256, m.importance_sha256);
  EXPECT_EQ(r.calibration.file, "datasets/text/tinyshakespeare.txt");
  EXPECT_EQ(r.calibration.sha256, std::string(64, 'c'));
  EXPECT_EQ(r.calibration.tokens, 4096);
  EXPECT_EQ(r.model.describe(), m.model.describe());
  EXPECT_EQ(r.model.sha256, m.model.sha256);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("format"), "kvlab.leank-mask");
  EXPECT_EQ(f->metadata().at("format_version"), "1");
  EXPECT_EQ(f->metadata().at("sparsity.requested"), "0.7");
  EXPECT_EQ(f->metadata().at("model.head_dim"), "8");
  EXPECT_EQ(f->tensors().at("mask").dtype, DType::I32);
  EXPECT_EQ(f->tensors().at("kept").shape, (std::vector<int64_t>{2, 2}));
}

TEST(LeankFiles, ImportanceRoundTripsWithItsMetadata) {
  ChannelImportance imp = importance(2, 1, 4, {0.5f, 0.25f, 1.0f, 0.0f, 0.125f, 0.75f, 0.375f, 0.625f});
  imp.model.sha256 = std::string(64, 'd');
  imp.calibration = {"text.txt", std::string(64, 'e'), 123};
  imp.extra["training.lr"] = "0.02";
  const std::string path = testing::temp_dir() + "/importance.safetensors";
  write_importance(path, imp);
  const ChannelImportance r = read_importance(path);
  EXPECT_EQ(r.values, imp.values);
  EXPECT_EQ(r.source, "trained");
  EXPECT_EQ(r.model.sha256, imp.model.sha256);
  EXPECT_EQ(r.calibration.tokens, 123);
  EXPECT_EQ(r.extra, imp.extra);
  // Importance is not a mask, and a mask is not importance.
  EXPECT_TRUE(contains(error_of([&] { read_mask(path); }), "not a kvlab.leank-mask file"));
}

TEST(LeankFiles, AMaskForAnotherModelIsRefusedNamingBoth) {
  const ChannelMask m = sample_mask();
  const std::string path = testing::temp_dir() + "/mask.safetensors";
  write_mask(path, m);
  ModelFingerprint other = m.model;
  other.layers = 6;
  std::string e = error_of([&] { read_mask(path, other, "models/big"); });
  EXPECT_TRUE(contains(e, path) && contains(e, "models/big") && contains(e, "2 layers") && contains(e, "6 layers")) << e;
  other = m.model;
  other.sha256 = std::string(64, 'f');
  e = error_of([&] { read_mask(path, other, "models/retrained"); });
  EXPECT_TRUE(contains(e, "another checkpoint") && contains(e, std::string(64, 'f'))) << e;
  other.sha256.clear();  // an unhashed model of the same shape is accepted
  EXPECT_EQ(error_of([&] { read_mask(path, other, "models/same"); }), "");
}

TEST(LeankFiles, InconsistentOrForeignFilesAreRefused) {
  const std::string dir = testing::temp_dir();
  ChannelMask m = sample_mask();
  m.kept[1] += 4;  // no longer the row sum
  write_mask(dir + "/bad.safetensors", m);
  EXPECT_TRUE(contains(error_of([&] { read_mask(dir + "/bad.safetensors"); }), "but the mask keeps"));
  m = sample_mask();
  m.keep[3] = 2;
  write_mask(dir + "/two.safetensors", m);
  EXPECT_TRUE(contains(error_of([&] { read_mask(dir + "/two.safetensors"); }), "not 0 or 1"));
  // A plain safetensors file without kvlab's metadata.
  EXPECT_TRUE(contains(error_of([&] { read_mask(testing::golden_dir() + "/qwen2.safetensors"); }), "no \"format\""));
  // __metadata__ must be an object of strings.
  const std::string header = R"({"__metadata__":{"format":1},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  uint64_t n = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  testing::write_file(dir + "/meta.safetensors", bytes + header + std::string(4, '\0'));
  EXPECT_TRUE(contains(error_of([&] { SafetensorsFile::open(dir + "/meta.safetensors"); }),
                       "__metadata__ entry \"format\" is 1, not a string"));
}

// kvlab's RoPE-pair-closed option: the rule on pair sums (i, i + dim/2), both channels kept.
TEST(LeankRule, RopePairsAreKeptTogetherRankedByTheirSum) {
  // 1 layer x 2 heads x 8 channels: pairs (0,4) (1,5) (2,6) (3,7).
  const std::vector<float> v = {9, 0, 1, 0, 0, 5, 0, 0,    // head 0 pair sums: 9 5 1 0
                                1, 1, 1, 1, 1, 1, 1, 1};   // head 1: 2 2 2 2
  // Quantile 0.5 of the sums {0,1,2,2,2,2,5,9} = 2; >= 2: head 0 two pairs, head 1 four
  // (alignment 4 = units of 2 pairs).
  ChannelMask m = make_mask(importance(1, 2, 8, v), 0.5, 4, true);
  EXPECT_TRUE(m.rope_pairs);
  EXPECT_FLOAT_EQ(m.threshold, 2.0f);
  EXPECT_EQ(m.kept, (std::vector<int32_t>{4, 8}));
  m = make_mask(importance(1, 2, 8, v), 0.8, 4, true);  // threshold 2 + 0.6 * 3 = 3.8: pairs 0 and 1 of head 0
  for (int h = 0; h < 2; h++)
    for (int c = 0; c < 4; c++) EXPECT_EQ(m.kept_at(0, h, c), m.kept_at(0, h, c + 4)) << h << " " << c;
  EXPECT_EQ(kept_channels(m, 0, 0), (std::vector<int32_t>{0, 1, 4, 5}));
  EXPECT_EQ(m.kept[1], 0);
  EXPECT_TRUE(contains(error_of([&] { make_mask(importance(1, 2, 8, v), 0.5, 1, true); }), "is odd"));
  // The file records it, and a file that says so must hold it.
  const std::string dir = testing::temp_dir();
  write_mask(dir + "/pairs.safetensors", m);
  EXPECT_TRUE(read_mask(dir + "/pairs.safetensors").rope_pairs);
  write_mask(dir + "/plain.safetensors", make_mask(importance(1, 2, 8, v), 0.7, 4));
  EXPECT_FALSE(read_mask(dir + "/plain.safetensors").rope_pairs);
  m.keep[4] = 0;
  m.keep[6] = 1;
  write_mask(dir + "/open.safetensors", m);
  EXPECT_TRUE(contains(error_of([&] { read_mask(dir + "/open.safetensors"); }), "without its RoPE partner"));
}

TEST(LeankFiles, CompareCountsOverlap) {
  ChannelMask a = sample_mask(), b = sample_mask();
  MaskComparison same = compare_masks(a, "a", b, "b");
  EXPECT_EQ(same.total.jaccard(), 1.0);
  EXPECT_EQ(same.agree, same.channels);
  // Move one kept channel of layer 1 head 0 somewhere else in b.
  int from = -1, to = -1;
  for (int c = 0; c < 8; c++) (b.kept_at(1, 0, c) ? from : to) = c;
  ASSERT_GE(from, 0);
  ASSERT_GE(to, 0);
  b.keep[size_t(2 * 8 + from)] = 0;
  b.keep[size_t(2 * 8 + to)] = 1;
  MaskComparison c = compare_masks(a, "a", b, "b");
  EXPECT_EQ(c.layers[0].jaccard(), 1.0);
  const MaskComparison::Row& r = c.layers[1];
  EXPECT_EQ(r.both, r.kept_a - 1);
  EXPECT_DOUBLE_EQ(r.jaccard(), double(r.kept_a - 1) / double(r.kept_a + 1));
  EXPECT_EQ(c.agree, c.channels - 2);
  ChannelMask other = make_mask(importance(1, 2, 8, std::vector<float>(16, 1.0f)), 0.5, 4);
  EXPECT_TRUE(contains(error_of([&] { compare_masks(a, "a.st", other, "o.st"); }), "different shapes"));
}

// ---------------------------------------------------------------------------- the estimator

std::string tiny_llama() { return testing::source_dir() + "/datasets/models/tiny-random-llama"; }

std::vector<int32_t> calibration_ids(int n, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; i++) ids.push_back(int32_t(5 + (i * 131 + i / 7) % (vocab - 5)));
  return ids;
}

TEST(LeankEstimate, FiniteDeterministicScoresOfTheModelsShape) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 128, false);
  EstimateOptions o;
  o.sequence = 100;
  o.chunk = 32;
  o.window = 8;
  const std::vector<int32_t> ids = calibration_ids(250, m.config.vocab_size);
  ChannelImportance a = estimate_qk_importance(*m.model, ids, 0, o);
  EXPECT_EQ(a.model.layers, 3);
  EXPECT_EQ(a.model.kv_heads, 2);
  EXPECT_EQ(a.model.head_dim, 16);
  ASSERT_EQ(a.values.size(), 3u * 2u * 16u);
  EXPECT_EQ(a.source, "qk-magnitude");
  // 250 ids in sequences of BOS + 99: 100 + 100 + 53 tokens.
  EXPECT_EQ(a.calibration.tokens, 253);
  for (float v : a.values) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_GE(v, 0.0f);
  }
  EXPECT_GT(*std::max_element(a.values.begin(), a.values.end()), 0.0f);
  ChannelImportance b = estimate_qk_importance(*m.model, ids, 0, o);
  EXPECT_EQ(a.values, b.values);
  // The window is honoured: scoring other queries changes the scores.
  o.window = 1;
  EXPECT_NE(estimate_qk_importance(*m.model, ids, 0, o).values, a.values);
  // And the result makes a mask.
  ChannelMask mask = make_mask(a, 0.5, 4);
  EXPECT_NEAR(mask.sparsity_achieved, 0.5, 0.25);
}

TEST(LeankEstimate, ObserverSeesTheKeysTheCacheStores) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 64, false);
  const ModelConfig& c = m.config;
  KVCache cache = m.model->new_cache(64);
  std::vector<std::vector<float>> seen_k(size_t(c.num_layers));
  int calls = 0;
  ForwardExtras extras;
  extras.observe_qk = [&](int layer, const Tensor& q, const Tensor& k) {
    calls++;
    EXPECT_EQ(q.dim(1), c.q_dim());
    seen_k[size_t(layer)] = backend->to_host_f32(k);
  };
  const std::vector<int32_t> ids = calibration_ids(20, c.vocab_size);
  std::vector<int32_t> positions(ids.size());
  for (size_t i = 0; i < ids.size(); i++) positions[i] = int32_t(i);
  m.model->forward(ids, positions, cache, Logits::None, extras);
  EXPECT_EQ(calls, c.num_layers);
  // The cache holds keys after RoPE: the observer's k must be exactly those.
  for (int l = 0; l < c.num_layers; l++) {
    std::vector<float> stored = backend->to_host_f32(cache.k[size_t(l)]);  // [kv_heads, capacity, head_dim]
    for (int h = 0; h < c.num_kv_heads; h++)
      for (size_t t = 0; t < ids.size(); t++)
        for (int d = 0; d < c.head_dim; d++)
          ASSERT_EQ(seen_k[size_t(l)][t * size_t(c.kv_dim()) + size_t(h * c.head_dim + d)],
                    stored[(size_t(h) * 64 + t) * size_t(c.head_dim) + size_t(d)])
              << "layer " << l << " head " << h << " token " << t << " channel " << d;
  }
  // A single-token step with an observer calls it too (it is never recorded).
  calls = 0;
  m.model->forward({7}, {20}, cache, Logits::Last, extras);
  EXPECT_EQ(calls, c.num_layers);
}

TEST(LeankEstimate, BadOptionsAreRefused) {
  auto backend = make_backend(BackendKind::CPU);
  LoadedModel m = load_model(tiny_llama(), *backend, 64, false);
  const std::vector<int32_t> ids = calibration_ids(50, m.config.vocab_size);
  EstimateOptions o;
  o.sequence = 64;
  o.chunk = 1;
  EXPECT_TRUE(contains(error_of([&] { estimate_qk_importance(*m.model, ids, 0, o); }), "chunk 1"));
  o.chunk = 32;
  o.window = 0;
  EXPECT_TRUE(contains(error_of([&] { estimate_qk_importance(*m.model, ids, 0, o); }), "window 0"));
  o.window = 8;
  o.sequence = 5000;
  EXPECT_TRUE(contains(error_of([&] { estimate_qk_importance(*m.model, ids, 0, o); }), "max_position_embeddings"));
  o.sequence = 64;
  EXPECT_TRUE(contains(error_of([&] { estimate_qk_importance(*m.model, {1}, -1, o); }), "too short"));
  EXPECT_TRUE(contains(error_of([&] { estimate_qk_importance(*m.model, {1, 99999}, -1, o); }), "99999"));
}

// ---------------------------------------------------------------------------- kvlab-leank

std::string leank() { return testing::bin_dir() + "/kvlab-leank"; }

TEST(LeankApp, EstimateMaskInspectCompareEndToEnd) {
  const std::string dir = testing::temp_dir();
  const std::string text = testing::source_dir() + "/datasets/text/tinyshakespeare.txt";
  auto r = run_command(leank() + " estimate --model " + tiny_llama() + " --text " + text +
                       " --tokens 300 --sequence 128 --chunk 64 --out " + dir + "/imp.safetensors");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "tokens in sequences of 128 (chunk 64, window 32)")) << r.out;
  ChannelImportance imp = read_importance(dir + "/imp.safetensors");
  EXPECT_EQ(imp.source, "qk-magnitude");
  EXPECT_EQ(imp.calibration.file, text);
  EXPECT_EQ(imp.calibration.sha256.size(), 64u);
  EXPECT_EQ(imp.model.sha256.size(), 64u);
  EXPECT_EQ(imp.extra.at("estimate.window"), "32");

  for (const char* sparsity : {"0.5", "0.7"}) {
    const std::string out = dir + "/mask" + sparsity + ".safetensors";
    r = run_command(leank() + " mask --importance " + dir + "/imp.safetensors --model " + tiny_llama() +
                    " --sparsity " + sparsity + " --alignment 4 --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "K channels kept") && contains(r.out, "per-head count histogram")) << r.out;
    ChannelMask m = read_mask(out);
    EXPECT_EQ(m.model.sha256, imp.model.sha256);
    EXPECT_EQ(m.alignment, 4);
    EXPECT_NEAR(m.sparsity_achieved, std::stod(sparsity), 0.2);
  }
  r = run_command(leank() + " inspect " + dir + "/mask0.7.safetensors --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["sparsity_requested"], 0.7);
  EXPECT_EQ(j["kept"].size(), 3u);
  EXPECT_EQ(j["importance_source"], "qk-magnitude");
  r = run_command(leank() + " inspect " + dir + "/imp.safetensors");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "qk-magnitude")) << r.out;

  r = run_command(leank() + " compare --mask " + dir + "/mask0.5.safetensors --mask " + dir +
                  "/mask0.7.safetensors --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = json::parse(r.out);
  // Same importance, higher sparsity: the 0.7 mask keeps a subset of the 0.5 one.
  EXPECT_EQ(j["both"], j["kept_b"]);
  EXPECT_LT(j["jaccard"].get<double>(), 1.0);
  EXPECT_EQ(j["layers"].size(), 3u);
  r = run_command(leank() + " compare --mask " + dir + "/mask0.5.safetensors --mask " + dir + "/mask0.5.safetensors");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "| all |") && contains(r.out, "1.000")) << r.out;
}

TEST(LeankApp, DefaultCalibrationTextIsTinyShakespeare) {
  const std::string out = testing::temp_dir() + "/imp.safetensors";
  auto r = run_command(leank() + " estimate --model " + tiny_llama() + " --tokens 64 --sequence 64 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(read_importance(out).calibration.file, "tinyshakespeare.txt"));
}

TEST(LeankApp, BadFlagsAndInputsExitTwo) {
  const std::string dir = testing::temp_dir();
  auto r = run_command(leank() + " estimate --model " + tiny_llama() + " --tokens 100 --sequence 64 --out " + dir +
                       "/imp.safetensors");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string mask = leank() + " mask --importance " + dir + "/imp.safetensors --out " + dir + "/m.safetensors";
  struct Case {
    std::string command, message;
  };
  const std::vector<Case> cases = {
      {leank(), "subcommand"},
      {leank() + " frobnicate", "subcommand"},
      {leank() + " estimate --model " + tiny_llama(), "--out"},
      {leank() + " estimate --model " + tiny_llama() + " --tokens x --out o", "--tokens"},
      {mask + " --model " + tiny_llama(), "--sparsity"},
      {mask + " --model " + tiny_llama() + " --sparsity 1.5", "sparsity 1.5 is outside [0, 1)"},
      {mask + " --model " + tiny_llama() + " --sparsity 0.5 --alignment 3", "alignment 3 does not divide head_dim 16"},
      {mask + " --model " + tiny_llama() + " --sparsity 0.5", "alignment 32 does not divide head_dim 16"},
      {mask + " --model " + testing::source_dir() + "/datasets/models/tiny-random-qwen2 --sparsity 0.5 --alignment 4",
       "was made for another model"},
      {leank() + " compare --mask " + dir + "/imp.safetensors", "exactly two masks"},
      {leank() + " inspect " + dir + "/missing.safetensors", "cannot open"},
  };
  for (const Case& c : cases) {
    r = run_command(c.command);
    EXPECT_EQ(r.exit_code, 2) << c.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << c.command << "\n" << r.err;
  }
}

}  // namespace
}  // namespace kvlab
