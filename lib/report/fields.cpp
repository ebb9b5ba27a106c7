#include "report/fields.h"

#include <cstdio>

#include "core/error.h"
#include "model/memory_plan.h"

namespace kvlab {

const std::vector<Field>& report_fields() {
  static const std::vector<Field> all = {
      {"quality", "quality",
       "the task's own metric: accuracy (passkey, niah), mean score (qa), perplexity (lower is better)", Field::Plain,
       +1},
      {"accuracy", "accuracy", "fraction of samples answered correctly", Field::Ratio, +1},
      {"score", "score", "qa: mean per-example score", Field::Ratio, +1},
      {"ppl", "perplexity", "perplexity: exp(mean NLL)", Field::Perplexity, -1},
      {"kv_bytes", "KV at peak", "K+V bytes the cache kept at its peak, all layers", Field::Bytes, -1},
      {"kv_bytes_end", "KV at end", "K+V bytes kept at the end of sequences (max over sequences)", Field::Bytes, -1},
      {"kv_allocated_bytes", "KV allocated", "bytes the KV store allocated at its peak", Field::Bytes, -1},
      {"memory_bytes", "planned memory", "planned weights + KV of the context the run holds + workspace", Field::Bytes,
       -1},
      {"planned_kv_bytes", "planned KV", "planned KV bytes of the context the run holds", Field::Bytes, -1},
      {"weight_bytes", "weights", "weight bytes on the backend", Field::Bytes, -1},
      {"context_tokens", "context", "tokens one sequence holds at most (prompt + generated)", Field::Tokens, 0},
      {"decode_tokens_per_s", "decode tok/s", "decode speed, tokens per second", Field::PerSecond, +1},
      {"prefill_tokens_per_s", "prefill tok/s", "prefill speed, tokens per second (mean over sequences)",
       Field::PerSecond, +1},
      {"ttft_s", "TTFT", "time to first token, mean", Field::Seconds, -1},
      {"token_latency_s_p50", "latency p50", "per-token decode latency, median", Field::Seconds, -1},
      {"token_latency_s_p99", "latency p99", "per-token decode latency, 99th percentile", Field::Seconds, -1},
      {"host_memory_bytes", "host peak", "peak resident memory of the kvlab-eval process", Field::Bytes, -1},
      {"backend_memory_bytes", "backend peak", "most the backend held at once: weights, KV store, workspace (device memory on cuda)",
       Field::Bytes, -1},
      {"samples", "samples", "samples, examples or predicted tokens scored", Field::Count, 0},
  };
  return all;
}

const Field& find_field(const std::string& name) {
  for (const Field& f : report_fields())
    if (f.name == name) return f;
  std::string names;
  for (const Field& f : report_fields()) names += (names.empty() ? "" : ", ") + f.name;
  fail("unknown field \"" + name + "\" (choose one of: " + names + ")");
}

std::string format_value(const Field& f, double v) {
  char buf[64];
  switch (f.unit) {
    case Field::Bytes:
      return format_bytes(size_t(v < 0 ? 0 : v));
    case Field::Ratio:
      std::snprintf(buf, sizeof buf, "%.3f", v);
      break;
    case Field::Seconds:
      std::snprintf(buf, sizeof buf, v < 0.01 ? "%.2f ms" : "%.3f s", v < 0.01 ? v * 1e3 : v);
      break;
    case Field::PerSecond:
      std::snprintf(buf, sizeof buf, "%.1f", v);
      break;
    case Field::Perplexity:
      std::snprintf(buf, sizeof buf, "%.2f", v);
      break;
    case Field::Tokens:
    case Field::Count:
      std::snprintf(buf, sizeof buf, "%.0f", v);
      break;
    case Field::Plain:
      std::snprintf(buf, sizeof buf, "%.4g", v);
      break;
  }
  return buf;
}

}  // namespace kvlab
