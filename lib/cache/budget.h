#pragma once
// Cache budgets as users give them: tokens ("2048"), a fraction of the context ("0.25"), or
// bytes of K+V over all layers ("512MiB", "2GiB", "1000000B").
#include <cstddef>
#include <string>

namespace kvlab {

// Tokens per (layer, KV head). Throws Error for text that is none of the three forms, or a
// budget below one token.
int resolve_budget(const std::string& text, int context_tokens, size_t kv_bytes_per_token);

}  // namespace kvlab
