// kvlab-generate: greedy generation from a prompt, optionally dumping every position's logits.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "run/cli.h"
#include "run/hf_overrides.h"
#include "model/chat_template.h"
#include "model/generate.h"
#include "model/loaded_model.h"
#include "model/tokenizer.h"
#include "run/cache_dump.h"
#include "run/cache_options.h"

namespace {

std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(int32_t(v));
    } catch (const std::exception&) {
      kvlab::fail("--prompt-ids: \"" + item + "\" is not a token id");
    }
  }
  if (ids.empty()) kvlab::fail("--prompt-ids: no ids given");
  return ids;
}

int generate_main(int argc, char** argv) {
  CLI::App app{"Greedy generation under a KV-cache policy (the full cache by default).", "kvlab-generate"};
  std::string model_dir = KVLAB_DEFAULT_MODEL, tokenizer_path, prompt, prompt_ids, system, dump, backend_name = "cpu";
  kvlab::CacheFlags cache_flags;
  kvlab::CacheDumpFlags dump_flags;
  int max_new = 32;
  bool chat = false, as_json = false, ignore_eos = false;
  app.add_option("--model", model_dir, "Hugging Face model directory (default: the embedded tiny model)");
  app.add_option("--tokenizer", tokenizer_path, "tokenizer.json (default: the one in the model directory)");
  std::string overrides;
  kvlab::add_hf_overrides_flag(app, overrides);
  auto* p = app.add_option("--prompt", prompt, "Prompt text (UTF-8)");
  auto* pi = app.add_option("--prompt-ids", prompt_ids, "Prompt as comma-separated token ids, no tokenizer involved");
  p->excludes(pi);
  pi->excludes(p);
  app.add_option("--max-new-tokens", max_new, "Tokens to generate")->check(CLI::Range(1, 1 << 20));
  app.add_flag("--chat", chat, "Wrap --prompt in the model's chat template (Llama-3 or ChatML) as a user turn");
  app.add_option("--system", system, "System message for --chat");
  app.add_flag("--ignore-eos", ignore_eos, "Keep generating past end-of-sequence tokens");
  app.add_option("--dump-logits", dump, "Write the logits of every fed position to this JSON file");
  app.add_option("--backend", backend_name, "cpu (Eigen reference) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_flag("--json", as_json, "Print ids, text and timings as JSON");
  kvlab::add_cache_flags(app, cache_flags);
  kvlab::add_cache_dump_flags(app, dump_flags);
  if (int rc = kvlab::parse_command_line(app, argc, argv); rc >= 0) return rc;
  if (prompt.empty() && prompt_ids.empty()) kvlab::fail("give --prompt TEXT or --prompt-ids 1,2,3");
  if (chat && prompt.empty()) kvlab::fail("--chat needs --prompt");
  kvlab::CacheSpec cache_spec = kvlab::cache_spec_from_flags(cache_flags);
  const kvlab::CacheDump cache_dump(dump_flags, cache_spec);

  if (tokenizer_path.empty()) tokenizer_path = model_dir + "/tokenizer.json";
  kvlab::Tokenizer tok = kvlab::Tokenizer::load(tokenizer_path);
  std::vector<int32_t> ids;
  if (!prompt_ids.empty()) {
    ids = parse_ids(prompt_ids);
  } else if (chat) {
    std::vector<kvlab::ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    messages.push_back({"user", prompt});
    ids = tok.encode(kvlab::apply_chat_template(kvlab::chat_format_for(tok), messages), false);
  } else {
    ids = tok.encode(prompt, true);
  }

  auto backend = kvlab::make_backend(kvlab::backend_kind_from_name(backend_name));
  const int context = int(ids.size()) + max_new;
  kvlab::LoadedModel m = kvlab::load_model(model_dir, *backend, context, false, kvlab::kDefaultPrefillChunk, false,
                                           kvlab::hf_overrides_from_flag(overrides));
  for (int32_t id : ids)
    if (id >= m.config.vocab_size)
      kvlab::fail("prompt token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                  std::to_string(m.config.vocab_size));
  if (context > m.config.context_window())
    kvlab::fail("prompt (" + std::to_string(ids.size()) + ") + --max-new-tokens (" + std::to_string(max_new) +
                ") exceed " + m.config.context_window_text());

  kvlab::CachedSequence seq(*m.model, cache_spec, int(ids.size()), max_new);
  kvlab::GenerateOptions opt;
  opt.max_new_tokens = max_new;
  opt.keep_logits = !dump.empty();
  if (!ignore_eos) opt.stop_ids = tok.eos_ids();
  kvlab::GenerateResult r = kvlab::generate_greedy(seq, ids, opt);
  std::string text = tok.decode(r.tokens);
  seq.finish();
  cache_dump.write(model_dir, cache_spec);

  if (!dump.empty()) {
    const size_t vocab = size_t(m.config.vocab_size);
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i * vocab < r.logits.size(); i++)
      rows.push_back(std::vector<float>(r.logits.begin() + long(i * vocab), r.logits.begin() + long((i + 1) * vocab)));
    nlohmann::json j = {{"model", model_dir}, {"prompt_ids", ids}, {"generated_ids", r.tokens}, {"logits", rows}};
    kvlab::write_file_atomically(dump, j.dump() + "\n");
  }
  if (as_json) {
    std::vector<size_t> kept = seq.kept_kv_bytes_per_layer();
    nlohmann::json j = {{"prompt_ids", ids},
                        {"generated_ids", r.tokens},
                        {"text", text},
                        {"prefill_seconds", r.prefill_seconds},
                        {"token_seconds", r.token_seconds},
                        {"cache", kvlab::to_json(cache_spec)},
                        {"kv_bytes_kept_per_layer", kept},
                        {"kv_bytes_allocated", seq.allocated_bytes()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", text.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kvlab::run_main("kvlab-generate", generate_main, argc, argv); }
