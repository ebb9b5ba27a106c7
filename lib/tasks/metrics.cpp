#include "tasks/metrics.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <utf8proc.h>

namespace kvlab {

namespace {

// Calls fn(code point, bytes) for each character; a byte that is not UTF-8 passes as itself
// (code point -1) so nothing is lost.
template <typename Fn>
void for_each_char(std::string_view s, Fn fn) {
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = -1;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          utf8proc_ssize_t(s.size() - i), &cp);
    if (n <= 0) {
      cp = -1;
      n = 1;
    }
    fn(cp, s.substr(i, size_t(n)));
    i += size_t(n);
  }
}

// Python's str.lower per character (simple case mapping: the one-to-one part of it).
std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for_each_char(s, [&](utf8proc_int32_t cp, std::string_view bytes) {
    if (cp < 0) {
      out += bytes;
      return;
    }
    utf8proc_uint8_t buf[4];
    out.append(reinterpret_cast<char*>(buf), size_t(utf8proc_encode_char(utf8proc_tolower(cp), buf)));
  });
  return out;
}

// Python's str.isspace, which str.split() splits on.
bool is_space(utf8proc_int32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85) return true;
  if (cp < 0x80) return false;
  auto c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

// Python re's \w on str: letters, numbers and the underscore.
bool is_word(utf8proc_int32_t cp) {
  if (cp < 0) return false;
  if (cp == '_') return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Python's string.punctuation; ASCII bytes never occur inside a multi-byte character.
bool is_punctuation(char c) { return c > 0 && std::strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) != nullptr; }

std::vector<std::string> words(std::string_view normalized) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= normalized.size()) {
    size_t end = normalized.find(' ', start);
    if (end == std::string_view::npos) end = normalized.size();
    if (end > start) out.emplace_back(normalized.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); i++) {
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

double f1(double overlap, size_t predicted, size_t gold) {
  if (overlap == 0) return 0;
  const double p = overlap / double(predicted), r = overlap / double(gold);
  return 2 * p * r / (p + r);
}

}  // namespace

std::string normalize_answer(std::string_view text) {
  std::string s = lower(text);
  s.erase(std::remove_if(s.begin(), s.end(), is_punctuation), s.end());
  // Articles as whole words (between \b's), then whitespace collapsed: a word run is either kept
  // or dropped, and runs of anything else that is space become one separator.
  std::string out, run, pending_space;
  auto end_run = [&] {
    if (run.empty()) return;
    if (run == "a" || run == "an" || run == "the") {
      pending_space = " ";
    } else {
      if (!out.empty()) out += pending_space;
      out += run;
      pending_space.clear();
    }
    run.clear();
  };
  for_each_char(s, [&](utf8proc_int32_t cp, std::string_view bytes) {
    if (is_word(cp)) {
      run += bytes;
      return;
    }
    end_run();
    if (is_space(cp)) {
      pending_space = " ";
    } else {
      if (!out.empty()) out += pending_space;
      out += bytes;
      pending_space.clear();
    }
  });
  end_run();
  return out;
}

double exact_match(std::string_view prediction, std::string_view gold) {
  return normalize_answer(prediction) == normalize_answer(gold) ? 1.0 : 0.0;
}

double token_f1(std::string_view prediction, std::string_view gold) {
  std::vector<std::string> p = words(normalize_answer(prediction)), g = words(normalize_answer(gold));
  std::map<std::string, int> gold_counts;
  for (const std::string& w : g) gold_counts[w]++;
  int same = 0;
  for (const std::string& w : p)
    if (auto it = gold_counts.find(w); it != gold_counts.end() && it->second > 0) {
      it->second--;
      same++;
    }
  return f1(same, p.size(), g.size());
}

double rouge_l(std::string_view prediction, std::string_view gold) {
  std::vector<std::string> p = words(normalize_answer(prediction)), g = words(normalize_answer(gold));
  return f1(double(lcs_length(p, g)), p.size(), g.size());
}

double substring_match(std::string_view prediction, std::string_view gold) {
  const std::string g = normalize_answer(gold);
  return !g.empty() && normalize_answer(prediction).find(g) != std::string::npos ? 1.0 : 0.0;
}

double best_over_golds(AnswerMetric metric, std::string_view prediction, const std::vector<std::string>& golds) {
  double best = 0;
  for (const std::string& g : golds) best = std::max(best, metric(prediction, g));
  return best;
}

double string_match_all(std::string_view prediction, const std::vector<std::string>& references) {
  if (references.empty()) return 0;
  const std::string p = lower(prediction);
  int found = 0;
  for (const std::string& r : references) found += p.find(lower(r)) != std::string::npos;
  return double(found) / double(references.size());
}

}  // namespace kvlab
