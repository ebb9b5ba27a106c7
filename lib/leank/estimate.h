#pragma once
// Training-free LeanK importance: ThinK's query-driven channel score (SalesforceAIResearch/ThinK
// `kv_pruning_utils.py`; kvpress ThinKPress) averaged over calibration text, so that a static
// mask can be made without LeanK's training. Per (layer, KV head, post-RoPE channel c):
//
//   at the end of every prefill chunk of every calibration sequence ("an observation"):
//     qn[c] = mean over the group's query heads and the chunk's last `window` queries of q[c]^2
//     kn[c] = mean over every token of the sequence so far of k[c]^2
//   score[c] = mean over observations of qn[c] * kn[c]
//
// qn·kn is ThinK's efficient form of |Q_c|·|K_c|: how much channel c can move q·k. All layers
// share the softmax scale 1/sqrt(head_dim), so the scores compare across layers and one global
// quantile (LeanK's stage-2 rule) is meaningful on them.
#include <cstdint>
#include <vector>

#include "leank/mask.h"

namespace kvlab {

class Transformer;

struct EstimateOptions {
  int sequence = 1024;  // tokens per calibration sequence (a fresh cache each)
  int chunk = 256;      // prefill chunk; one observation at the end of each
  int window = 32;      // the last queries of a chunk whose q^2 counts (ThinK's window_size)
};

// Runs `ids` through `model` as consecutive sequences of options.sequence tokens (the last
// one shorter; each starts with `bos` when bos >= 0, the BOS counting towards its length) and
// returns the scores in importance.values, with importance.model's shape fields, source
// "qk-magnitude" and calibration.tokens (the tokens run) set; the caller adds the file, the
// hashes and anything else. Deterministic for a given backend. Errors for bad options or
// fewer than 2 tokens.
ChannelImportance estimate_qk_importance(Transformer& model, const std::vector<int32_t>& ids, int32_t bos,
                                         const EstimateOptions& options);

}  // namespace kvlab
