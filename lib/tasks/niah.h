#pragma once
// Needle in a haystack, RULER's NIAH variants (docs/methods.md 4.2): "One of the special magic
// numbers for <key> is: <value>." sentences hidden in real text or repeated filler, over a grid
// of prompt lengths x depths; scored by string_match_all.
#include <cstdint>
#include <string>
#include <vector>

namespace kvlab {

class Tokenizer;

enum class NiahVariant {
  Single,      // one needle, asked for
  MultiKey,    // `needles` keys, one value each; one key is asked, the others are distractors
  MultiValue,  // one key with `needles` values; all must be answered
  MultiQuery,  // `needles` keys, one value each; all are asked at once
};

struct NiahOptions {
  NiahVariant variant = NiahVariant::Single;
  bool repeat_haystack = false;  // the grass/sky filler instead of lines of `text`
  std::vector<int> lengths = {512, 1024};  // prompt tokens, template and needles included
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  int samples = 2;          // per (length, depth) cell
  int needles = 4;          // multikey / multivalue / multiquery: see NiahVariant
  int max_new_tokens = 0;   // 0: 16 per expected value
  uint64_t seed = 0;
};

struct NiahNeedle {
  std::string key, value;
  double depth = 0;     // where it sits, as a fraction of the haystack's units
  bool asked = false;   // its value is part of the answer
};

struct NiahPrompt {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<NiahNeedle> needles;     // in the order they were drawn
  std::vector<std::string> queries;    // keys asked, in the question's order
  std::vector<std::string> expected;   // values the answer must contain
  size_t haystack_begin = 0, haystack_end = 0;  // byte range of the haystack (with needles) in `text`
  uint64_t seed = 0;
  int max_new_tokens = 0;
};

// The seed of sample `sample` of cell (length, depth): a splitmix64 chain over (seed, length,
// round(depth * 1e6), sample), so a cell's prompts do not depend on the rest of the grid.
uint64_t niah_sample_seed(uint64_t seed, int length, double depth, int sample);

// Builds one prompt of at most `length` tokens (as close as whole haystack units allow). Its
// first asked needle sits at `depth`; the other needles at depths drawn from the seed. `lines`
// is the haystack text split into lines (ignored with repeat_haystack). Throws Error when
// `length` cannot hold the bare prompt.
NiahPrompt build_niah_prompt(const Tokenizer& tok, const NiahOptions& options, const std::vector<std::string>& lines,
                             int length, double depth, uint64_t seed);

}  // namespace kvlab
