#include "leank/estimate.h"

#include <algorithm>

#include "core/error.h"
#include "model/transformer.h"

namespace kvlab {

ChannelImportance estimate_qk_importance(Transformer& model, const std::vector<int32_t>& ids, int32_t bos,
                                         const EstimateOptions& o) {
  const ModelConfig& c = model.config();
  if (o.window < 1) fail("window " + std::to_string(o.window) + " must be at least 1 query");
  if (o.chunk < 2 || o.chunk > model.max_chunk())
    fail("chunk " + std::to_string(o.chunk) + " must be between 2 and the model's prefill chunk of " +
         std::to_string(model.max_chunk()) + " tokens");
  if (o.sequence < 2 || o.sequence > c.context_window())
    fail("sequence " + std::to_string(o.sequence) + " must be between 2 and the length of " + c.context_window_text());
  for (int32_t id : ids)
    if (id < 0 || id >= c.vocab_size)
      fail("calibration token id " + std::to_string(id) + " is outside the model's vocabulary of " +
           std::to_string(c.vocab_size));

  const int L = c.num_layers, H = c.num_kv_heads, D = c.head_dim, group = c.num_heads / c.num_kv_heads;
  const size_t per_layer = size_t(H) * size_t(D);
  std::vector<double> score(size_t(L) * per_layer, 0.0);  // sum over observations of qn * kn
  std::vector<double> k2(score.size(), 0.0);              // sum of k^2 over the current sequence
  std::vector<double> q2(per_layer);
  int64_t seen = 0;         // tokens of the current sequence before the chunk being run
  int64_t observations = 0;
  int64_t tokens_run = 0;

  Backend& backend = model.backend();
  ForwardExtras extras;
  extras.observe_qk = [&](int layer, const Tensor& q, const Tensor& k) {
    const std::vector<float> qh = backend.to_host_f32(q), kh = backend.to_host_f32(k);
    const int n = int(q.rows());
    double* ks = k2.data() + size_t(layer) * per_layer;
    for (int t = 0; t < n; t++)
      for (size_t i = 0; i < per_layer; i++) {
        const double v = kh[size_t(t) * per_layer + i];
        ks[i] += v * v;
      }
    // Query head h * group + g reads KV head h (GQA).
    std::fill(q2.begin(), q2.end(), 0.0);
    const int first = std::max(0, n - o.window);
    for (int t = first; t < n; t++)
      for (int h = 0; h < H; h++)
        for (int g = 0; g < group; g++) {
          const float* row = qh.data() + size_t(t) * size_t(c.q_dim()) + size_t(h * group + g) * size_t(D);
          for (int d = 0; d < D; d++) q2[size_t(h) * size_t(D) + size_t(d)] += double(row[d]) * double(row[d]);
        }
    const double q_count = double(n - first) * group, k_count = double(seen + n);
    double* s = score.data() + size_t(layer) * per_layer;
    for (size_t i = 0; i < per_layer; i++) s[i] += (q2[i] / q_count) * (ks[i] / k_count);
  };

  const size_t prefix = bos >= 0 ? 1 : 0;
  size_t next = 0;  // first unused calibration token
  while (next < ids.size()) {
    std::vector<int32_t> seq;
    if (bos >= 0) seq.push_back(bos);
    const size_t take = std::min(ids.size() - next, size_t(o.sequence) - prefix);
    seq.insert(seq.end(), ids.begin() + long(next), ids.begin() + long(next + take));
    next += take;
    if (seq.size() < 2) break;  // a lone BOS or token says nothing about attention

    KVCache cache = model.new_cache(int(seq.size()));
    std::fill(k2.begin(), k2.end(), 0.0);
    seen = 0;
    for (size_t begin = 0; begin < seq.size(); begin += size_t(o.chunk)) {
      const size_t n = std::min(size_t(o.chunk), seq.size() - begin);
      std::vector<int32_t> chunk(seq.begin() + long(begin), seq.begin() + long(begin + n)), positions(n);
      for (size_t i = 0; i < n; i++) positions[i] = int32_t(begin + i);
      model.forward(chunk, positions, cache, Logits::None, extras);
      seen += int64_t(n);
      observations++;
    }
    tokens_run += int64_t(seq.size());
  }
  if (observations == 0) fail("calibration text is too short: at least 2 tokens are needed");

  ChannelImportance imp;
  imp.model = ModelFingerprint::of(c);
  imp.source = kImportanceSourceQkMagnitude;
  imp.calibration.tokens = tokens_run;
  imp.values.resize(score.size());
  for (size_t i = 0; i < score.size(); i++) imp.values[i] = float(score[i] / double(observations));
  return imp;
}

}  // namespace kvlab
