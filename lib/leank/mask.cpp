#include "leank/mask.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"

namespace kvlab {

namespace {

constexpr const char* kImportanceFormat = "kvlab.leank-importance";
constexpr const char* kMaskFormat = "kvlab.leank-mask";
constexpr int kFormatVersion = 1;

using Metadata = std::map<std::string, std::string>;

// Shortest text that reads back as the same double.
std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

const std::string& meta_get(const Metadata& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  if (it == m.end()) fail(path + ": __metadata__ has no \"" + key + "\"");
  return it->second;
}

std::string meta_get_or(const Metadata& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? std::string() : it->second;
}

int64_t meta_int(const Metadata& m, const std::string& key, const std::string& path, int64_t min_value) {
  const std::string& s = meta_get(m, key, path);
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < min_value)
    fail(path + ": __metadata__ \"" + key + "\" is \"" + s + "\", not an integer >= " + std::to_string(min_value));
  return v;
}

double meta_double(const Metadata& m, const std::string& key, const std::string& path) {
  const std::string& s = meta_get(m, key, path);
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(v))
    fail(path + ": __metadata__ \"" + key + "\" is \"" + s + "\", not a number");
  return v;
}

void put_fingerprint(Metadata& m, const ModelFingerprint& f) {
  m["model.architecture"] = f.architecture;
  m["model.layers"] = std::to_string(f.layers);
  m["model.kv_heads"] = std::to_string(f.kv_heads);
  m["model.head_dim"] = std::to_string(f.head_dim);
  m["model.hidden_size"] = std::to_string(f.hidden_size);
  m["model.vocab_size"] = std::to_string(f.vocab_size);
  if (!f.sha256.empty()) m["model.sha256"] = f.sha256;
}

ModelFingerprint get_fingerprint(const Metadata& m, const std::string& path) {
  ModelFingerprint f;
  f.architecture = meta_get(m, "model.architecture", path);
  f.layers = int(meta_int(m, "model.layers", path, 1));
  f.kv_heads = int(meta_int(m, "model.kv_heads", path, 1));
  f.head_dim = int(meta_int(m, "model.head_dim", path, 1));
  f.hidden_size = int(meta_int(m, "model.hidden_size", path, 1));
  f.vocab_size = int(meta_int(m, "model.vocab_size", path, 1));
  f.sha256 = meta_get_or(m, "model.sha256");
  if (f.channels() > (int64_t(1) << 31)) fail(path + ": model shape in __metadata__ is impossibly large");
  return f;
}

void put_calibration(Metadata& m, const CalibrationInfo& c) {
  m["calibration.file"] = c.file;
  m["calibration.sha256"] = c.sha256;
  m["calibration.tokens"] = std::to_string(c.tokens);
}

CalibrationInfo get_calibration(const Metadata& m, const std::string& path) {
  CalibrationInfo c;
  c.file = meta_get_or(m, "calibration.file");
  c.sha256 = meta_get_or(m, "calibration.sha256");
  if (m.count("calibration.tokens")) c.tokens = meta_int(m, "calibration.tokens", path, 0);
  return c;
}

// The file's format and version, checked; returns the metadata.
const Metadata& require_format(const SafetensorsFile& f, const char* format) {
  const Metadata& m = f.metadata();
  const std::string& path = f.path();
  auto it = m.find("format");
  if (it == m.end())
    fail(path + ": not a " + format + " file (its __metadata__ has no \"format\"; kvlab-leank writes these files)");
  if (it->second != format) fail(path + ": is a \"" + it->second + "\" file, not a " + format + " file");
  int64_t version = meta_int(m, "format_version", path, 1);
  if (version != kFormatVersion)
    fail(path + ": " + format + " version " + std::to_string(version) + " is not supported (this kvlab reads version " +
         std::to_string(kFormatVersion) + ")");
  return m;
}

const TensorRecord& require_tensor(const SafetensorsFile& f, const std::string& name,
                                   const std::vector<int64_t>& shape) {
  auto it = f.tensors().find(name);
  if (it == f.tensors().end()) fail(f.path() + ": has no tensor \"" + name + "\"");
  const TensorRecord& t = it->second;
  if (t.shape != shape) {
    TensorRecord want;
    want.shape = shape;
    fail(f.path() + ": tensor \"" + name + "\" has shape " + t.shape_string() + " but its __metadata__ says " +
         want.shape_string());
  }
  return t;
}

std::string where(const ModelFingerprint& f, size_t index) {
  const size_t d = size_t(f.head_dim), h = size_t(f.kv_heads);
  return "[layer " + std::to_string(index / (d * h)) + ", head " + std::to_string(index / d % h) + ", channel " +
         std::to_string(index % d) + "]";
}

std::string int32_bytes(const std::vector<int32_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int32_t));
}

}  // namespace

// ---------------------------------------------------------------------------- fingerprints

ModelFingerprint ModelFingerprint::of(const ModelConfig& c, const std::string& sha256) {
  ModelFingerprint f;
  f.architecture = architecture_name(c.arch);
  f.layers = c.num_layers;
  f.kv_heads = c.num_kv_heads;
  f.head_dim = c.head_dim;
  f.hidden_size = c.hidden_size;
  f.vocab_size = c.vocab_size;
  f.sha256 = sha256;
  return f;
}

std::string ModelFingerprint::describe() const {
  std::string s = architecture + ", " + std::to_string(layers) + " layers x " + std::to_string(kv_heads) +
                  " KV heads x head_dim " + std::to_string(head_dim) + ", hidden " + std::to_string(hidden_size) +
                  ", vocab " + std::to_string(vocab_size);
  if (!sha256.empty()) s += ", sha256 " + sha256.substr(0, 12) + "…";
  return s;
}

void require_same_model(const ModelFingerprint& file, const std::string& file_path, const ModelFingerprint& model,
                        const std::string& model_name) {
  const bool same_shape = file.architecture == model.architecture && file.layers == model.layers &&
                          file.kv_heads == model.kv_heads && file.head_dim == model.head_dim &&
                          file.hidden_size == model.hidden_size && file.vocab_size == model.vocab_size;
  if (!same_shape)
    fail(file_path + " was made for another model: " + file.describe() + "; " + model_name + " is " + model.describe());
  if (!file.sha256.empty() && !model.sha256.empty() && file.sha256 != model.sha256)
    fail(file_path + " was made for another checkpoint of the same shape: sha256 " + file.sha256 + "; " + model_name +
         " has sha256 " + model.sha256);
}

// ---------------------------------------------------------------------------- importance files

void write_importance(const std::string& path, const ChannelImportance& imp) {
  KVLAB_ASSERT(int64_t(imp.values.size()) == imp.model.channels());
  Metadata m = imp.extra;
  m["format"] = kImportanceFormat;
  m["format_version"] = std::to_string(kFormatVersion);
  put_fingerprint(m, imp.model);
  m["importance.source"] = imp.source;
  put_calibration(m, imp.calibration);
  TensorToWrite t{"importance", DType::F32, {imp.model.layers, imp.model.kv_heads, imp.model.head_dim},
                  std::string(reinterpret_cast<const char*>(imp.values.data()), imp.values.size() * sizeof(float))};
  write_safetensors(path, {t}, m);
}

ChannelImportance read_importance(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  const Metadata& m = require_format(*f, kImportanceFormat);
  ChannelImportance imp;
  imp.model = get_fingerprint(m, path);
  imp.source = meta_get(m, "importance.source", path);
  imp.calibration = get_calibration(m, path);
  static const char* kKnown[] = {"format", "format_version", "importance.source"};
  for (const auto& [key, value] : m) {
    if (key.rfind("model.", 0) == 0 || key.rfind("calibration.", 0) == 0) continue;
    if (std::find_if(std::begin(kKnown), std::end(kKnown), [&key = key](const char* k) { return key == k; }) != std::end(kKnown))
      continue;
    imp.extra[key] = value;
  }
  const TensorRecord& t = require_tensor(*f, "importance", {imp.model.layers, imp.model.kv_heads, imp.model.head_dim});
  if (t.dtype == DType::I32) fail(path + ": tensor \"importance\" is I32; it must be a float tensor (F32)");
  imp.values.resize(size_t(t.numel()));
  convert_to_f32(t.data, t.dtype, imp.values.size(), imp.values.data());
  for (size_t i = 0; i < imp.values.size(); i++)
    if (!std::isfinite(imp.values[i]))
      fail(path + ": importance" + where(imp.model, i) + " is " + (std::isnan(imp.values[i]) ? "NaN" : "infinite"));
  return imp;
}

// ---------------------------------------------------------------------------- mask files

namespace {
// A channel of one head's keep row that is kept without its RoPE partner (c +- head_dim / 2),
// or -1 when every pair is kept or dropped together.
int unpaired_channel(const int32_t* row, int head_dim) {
  const int half = head_dim / 2;
  for (int c = 0; c < half; c++)
    if (row[c] != row[c + half]) return row[c] ? c : c + half;
  return -1;
}
}  // namespace

bool ChannelMask::pair_closed() const {
  const size_t hd = size_t(model.head_dim);
  for (size_t row = 0; row < keep.size(); row += hd)
    if (unpaired_channel(keep.data() + row, model.head_dim) >= 0) return false;
  return true;
}

void write_mask(const std::string& path, const ChannelMask& mask) {
  const ModelFingerprint& f = mask.model;
  KVLAB_ASSERT(int64_t(mask.keep.size()) == f.channels() && mask.kept.size() == size_t(f.layers * f.kv_heads));
  Metadata m;
  m["format"] = kMaskFormat;
  m["format_version"] = std::to_string(kFormatVersion);
  put_fingerprint(m, f);
  m["sparsity.requested"] = number_text(mask.sparsity_requested);
  m["sparsity.achieved"] = number_text(mask.sparsity_achieved);
  m["alignment"] = std::to_string(mask.alignment);
  if (mask.rope_pairs) m["rope_pairs"] = "1";
  m["threshold"] = number_text(double(mask.threshold));
  m["importance.source"] = mask.importance_source;
  if (!mask.importance_sha256.empty()) m["importance.sha256"] = mask.importance_sha256;
  put_calibration(m, mask.calibration);
  write_safetensors(path,
                    {{"mask", DType::I32, {f.layers, f.kv_heads, f.head_dim}, int32_bytes(mask.keep)},
                     {"kept", DType::I32, {f.layers, f.kv_heads}, int32_bytes(mask.kept)}},
                    m);
}

ChannelMask read_mask(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  const Metadata& m = require_format(*f, kMaskFormat);
  ChannelMask mask;
  mask.model = get_fingerprint(m, path);
  const ModelFingerprint& fp = mask.model;
  mask.sparsity_requested = meta_double(m, "sparsity.requested", path);
  mask.sparsity_achieved = meta_double(m, "sparsity.achieved", path);
  mask.alignment = int(meta_int(m, "alignment", path, 1));
  const std::string pairs = meta_get_or(m, "rope_pairs");
  if (!pairs.empty() && pairs != "0" && pairs != "1")
    fail(path + ": __metadata__ \"rope_pairs\" is \"" + pairs + "\", not 0 or 1");
  mask.rope_pairs = pairs == "1";
  mask.threshold = float(meta_double(m, "threshold", path));
  mask.importance_source = meta_get(m, "importance.source", path);
  mask.importance_sha256 = meta_get_or(m, "importance.sha256");
  mask.calibration = get_calibration(m, path);
  if (fp.head_dim % mask.alignment != 0)
    fail(path + ": alignment " + std::to_string(mask.alignment) + " does not divide head_dim " +
         std::to_string(fp.head_dim));
  if (!(mask.sparsity_requested >= 0 && mask.sparsity_requested < 1))
    fail(path + ": sparsity.requested " + number_text(mask.sparsity_requested) + " is outside [0, 1)");

  const TensorRecord& keep = require_tensor(*f, "mask", {fp.layers, fp.kv_heads, fp.head_dim});
  const TensorRecord& kept = require_tensor(*f, "kept", {fp.layers, fp.kv_heads});
  for (const TensorRecord* t : {&keep, &kept})
    if (t->dtype != DType::I32) fail(path + ": tensor \"" + t->name + "\" is " + dtype_name(t->dtype) + ", not I32");
  mask.keep.resize(size_t(keep.numel()));
  mask.kept.resize(size_t(kept.numel()));
  std::memcpy(mask.keep.data(), keep.data, keep.bytes);
  std::memcpy(mask.kept.data(), kept.data, kept.bytes);

  int64_t total = 0;
  for (size_t i = 0; i < mask.keep.size(); i++)
    if (mask.keep[i] != 0 && mask.keep[i] != 1)
      fail(path + ": mask" + where(fp, i) + " is " + std::to_string(mask.keep[i]) + ", not 0 or 1");
  for (int l = 0; l < fp.layers; l++) {
    for (int h = 0; h < fp.kv_heads; h++) {
      const size_t row = size_t(l) * size_t(fp.kv_heads) + size_t(h);
      const int32_t* r = mask.keep.data() + row * size_t(fp.head_dim);
      const int sum = std::accumulate(r, r + fp.head_dim, 0);
      const std::string at = "[layer " + std::to_string(l) + ", head " + std::to_string(h) + "]";
      if (mask.kept[row] != sum)
        fail(path + ": kept" + at + " is " + std::to_string(mask.kept[row]) + " but the mask keeps " +
             std::to_string(sum) + " channels there");
      if (sum % mask.alignment != 0)
        fail(path + ": kept" + at + " = " + std::to_string(sum) + " is not a multiple of the alignment " +
             std::to_string(mask.alignment));
      const int half = fp.head_dim / 2, c = mask.rope_pairs ? unpaired_channel(r, fp.head_dim) : -1;
      if (c >= 0)
        fail(path + ": the mask says rope_pairs but" + at + " keeps channel " + std::to_string(c) +
             " without its RoPE partner " + std::to_string(c < half ? c + half : c - half));
      total += sum;
    }
  }
  const double achieved = 1.0 - double(total) / double(fp.channels());
  if (std::abs(achieved - mask.sparsity_achieved) > 1e-9)
    fail(path + ": sparsity.achieved in __metadata__ is " + number_text(mask.sparsity_achieved) +
         " but the mask prunes " + number_text(achieved) + " of its channels");
  return mask;
}

ChannelMask read_mask(const std::string& path, const ModelFingerprint& expected, const std::string& model_name) {
  ChannelMask mask = read_mask(path);
  require_same_model(mask.model, path, expected, model_name);
  return mask;
}

// ---------------------------------------------------------------------------- the stage-2 rule

float quantile_linear(std::vector<float> values, double q) {
  KVLAB_ASSERT(!values.empty() && q >= 0 && q <= 1);
  std::sort(values.begin(), values.end());
  // torch.quantile turns q into a tensor of the input's dtype and computes the rank in it.
  const float rank = float(q) * float(values.size() - 1);
  const size_t below = size_t(rank);
  const size_t above = std::min(values.size() - 1, size_t(std::ceil(rank)));
  const float w = rank - float(below);
  const float a = values[below], b = values[above];
  // ATen's scalar lerp: the formula anchored at the nearer end.
  return std::abs(w) < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

ChannelMask make_mask(const ChannelImportance& importance, double sparsity, int alignment, bool rope_pairs) {
  const ModelFingerprint& f = importance.model;
  const int L = f.layers, H = f.kv_heads, D = f.head_dim;
  if (!(sparsity >= 0 && sparsity < 1))
    fail("sparsity " + number_text(sparsity) + " is outside [0, 1): it is the fraction of K channels to prune");
  if (alignment <= 0) fail("alignment " + std::to_string(alignment) + " must be a positive number of channels");
  if (D % alignment != 0)
    fail("alignment " + std::to_string(alignment) + " does not divide head_dim " + std::to_string(D) +
         ": kept channel counts are multiples of the alignment, from 0 to head_dim");
  if (L <= 0 || H <= 0 || D <= 0 || int64_t(importance.values.size()) != f.channels())
    fail("importance has " + std::to_string(importance.values.size()) + " values but the model needs [" +
         std::to_string(L) + ", " + std::to_string(H) + ", " + std::to_string(D) + "] = " +
         std::to_string(f.channels()));
  for (size_t i = 0; i < importance.values.size(); i++)
    if (!std::isfinite(importance.values[i]))
      fail("importance" + where(f, i) + " is " + (std::isnan(importance.values[i]) ? "NaN" : "infinite"));

  if (rope_pairs && alignment % 2 != 0)
    fail("alignment " + std::to_string(alignment) +
         " is odd: a RoPE-pair-closed mask keeps channels two at a time, so its counts are even");

  ChannelMask mask;
  mask.model = f;
  mask.sparsity_requested = sparsity;
  mask.alignment = alignment;
  mask.rope_pairs = rope_pairs;
  mask.importance_source = importance.source;
  mask.calibration = importance.calibration;
  // With rope_pairs the rule runs on pairs (i, i + D/2) scored by their summed importance, with
  // half the alignment, and each kept pair keeps both channels.
  const int width = rope_pairs ? D / 2 : D, unit = rope_pairs ? alignment / 2 : alignment;
  std::vector<float> scores = importance.values;
  if (rope_pairs) {
    scores.assign(size_t(L * H) * size_t(width), 0.0f);
    for (size_t row = 0; row < size_t(L * H); row++)
      for (int j = 0; j < width; j++)
        scores[row * size_t(width) + size_t(j)] =
            importance.values[row * size_t(D) + size_t(j)] + importance.values[row * size_t(D) + size_t(j + width)];
  }
  mask.threshold = quantile_linear(scores, sparsity);
  mask.keep.assign(importance.values.size(), 0);
  mask.kept.assign(size_t(L * H), 0);
  int64_t total = 0;
  std::vector<int> order(static_cast<size_t>(width));
  for (int row = 0; row < L * H; row++) {
    const float* v = scores.data() + size_t(row) * size_t(width);
    const int count = int(std::count_if(v, v + width, [&](float x) { return x >= mask.threshold; }));
    // Round to the nearest multiple, halves up: (cnt + align // 2) // align * align.
    const int k = std::clamp((count + unit / 2) / unit * unit, 0, width);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return v[a] > v[b]; });
    for (int i = 0; i < k; i++) {
      const int c = order[size_t(i)];
      mask.keep[size_t(row) * size_t(D) + size_t(c)] = 1;
      if (rope_pairs) mask.keep[size_t(row) * size_t(D) + size_t(c + width)] = 1;
    }
    mask.kept[size_t(row)] = rope_pairs ? 2 * k : k;
    total += mask.kept[size_t(row)];
  }
  mask.sparsity_achieved = 1.0 - double(total) / double(f.channels());
  return mask;
}

// ---------------------------------------------------------------------------- stats

MaskStats mask_stats(const ChannelMask& mask) {
  const ModelFingerprint& f = mask.model;
  MaskStats s;
  s.channels = f.channels();
  s.heads = f.layers * f.kv_heads;
  s.layer_kept_fraction.assign(size_t(f.layers), 0.0);
  s.layer_heads_pruned.assign(size_t(f.layers), 0);
  for (int l = 0; l < f.layers; l++) {
    int64_t layer_kept = 0;
    for (int h = 0; h < f.kv_heads; h++) {
      const int k = mask.kept_count(l, h);
      layer_kept += k;
      s.histogram[k]++;
      if (k == 0) {
        s.heads_pruned++;
        s.layer_heads_pruned[size_t(l)]++;
      }
      if (k == f.head_dim) s.heads_full++;
    }
    s.channels_kept += layer_kept;
    s.layer_kept_fraction[size_t(l)] = double(layer_kept) / double(int64_t(f.kv_heads) * f.head_dim);
  }
  s.k_kept_fraction = double(s.channels_kept) / double(s.channels);
  s.k_reduction = 1.0 - s.k_kept_fraction;
  s.v_reduction = double(s.heads_pruned) / double(s.heads);
  return s;
}

std::string format_mask_stats(const ChannelMask& mask, const MaskStats& s) {
  const ModelFingerprint& f = mask.model;
  char buf[512];
  std::string out;
  out += "model        " + f.describe() + "\n";
  out += "importance   " + mask.importance_source;
  if (!mask.calibration.file.empty())
    out += " (" + mask.calibration.file + ", " + std::to_string(mask.calibration.tokens) + " tokens)";
  out += "\n";
  std::snprintf(buf, sizeof buf, "sparsity     requested %.4g, achieved %.4f (alignment %d%s, threshold %.6g)\n\n",
                mask.sparsity_requested, mask.sparsity_achieved, mask.alignment,
                mask.rope_pairs ? ", RoPE pairs kept together" : "", double(mask.threshold));
  out += buf;
  std::string hist;
  for (const auto& [count, heads] : s.histogram)
    hist += (hist.empty() ? "" : ", ") + std::to_string(count) + ":" + std::to_string(heads);
  out += "| shape | K channels kept | K reduction | heads with 0 channels (V of mid tokens pruned) | heads with all "
         "channels | per-head count histogram |\n|---|---|---|---|---|---|\n";
  std::snprintf(buf, sizeof buf, "| %dx%dx%d | %.2f%% | %.2f%% | %d/%d = %.1f%% | %d | %s |\n\n", f.layers,
                f.kv_heads, f.head_dim, 100 * s.k_kept_fraction, 100 * s.k_reduction, s.heads_pruned, s.heads,
                100 * s.v_reduction, s.heads_full, hist.c_str());
  out += buf;
  out += "| layer | K kept | heads with 0 channels | channels kept per head |\n|---|---|---|---|\n";
  for (int l = 0; l < f.layers; l++) {
    std::string counts;
    for (int h = 0; h < f.kv_heads; h++) counts += (h ? " " : "") + std::to_string(mask.kept_count(l, h));
    std::snprintf(buf, sizeof buf, "| %d | %.2f%% | %d/%d | %s |\n", l, 100 * s.layer_kept_fraction[size_t(l)],
                  s.layer_heads_pruned[size_t(l)], f.kv_heads, counts.c_str());
    out += buf;
  }
  return out;
}

// ---------------------------------------------------------------------------- comparison

MaskComparison compare_masks(const ChannelMask& a, const std::string& a_name, const ChannelMask& b,
                             const std::string& b_name) {
  const ModelFingerprint &fa = a.model, &fb = b.model;
  if (fa.layers != fb.layers || fa.kv_heads != fb.kv_heads || fa.head_dim != fb.head_dim)
    fail("cannot compare masks of different shapes: " + a_name + " is for " + fa.describe() + "; " + b_name +
         " is for " + fb.describe());
  MaskComparison c;
  c.layers.resize(size_t(fa.layers));
  c.channels = fa.channels();
  for (int l = 0; l < fa.layers; l++) {
    MaskComparison::Row& r = c.layers[size_t(l)];
    for (int h = 0; h < fa.kv_heads; h++) {
      if (a.kept_count(l, h) == b.kept_count(l, h)) r.heads_same_count++;
      for (int ch = 0; ch < fa.head_dim; ch++) {
        const bool ka = a.kept_at(l, h, ch), kb = b.kept_at(l, h, ch);
        r.kept_a += ka;
        r.kept_b += kb;
        r.both += ka && kb;
        r.either += ka || kb;
        c.agree += ka == kb;
      }
    }
    c.total.kept_a += r.kept_a;
    c.total.kept_b += r.kept_b;
    c.total.both += r.both;
    c.total.either += r.either;
    c.total.heads_same_count += r.heads_same_count;
  }
  return c;
}

}  // namespace kvlab
