#pragma once
// Answer scores as LongBench and RULER compute them (docs/methods.md §4.2-4.3). Every score is
// in [0, 1]; a prediction is scored against each gold answer and the best score kept.
#include <string>
#include <string_view>
#include <vector>

namespace kvlab {

// LongBench's normalize_answer: lowercase, drop ASCII punctuation, replace the words a, an and
// the by a space, collapse whitespace runs to one space and trim.
std::string normalize_answer(std::string_view text);

// 1 when the normalized strings are equal.
double exact_match(std::string_view prediction, std::string_view gold);
// LongBench qa_f1_score: F1 over the bags of normalized words; 0 when nothing is shared.
double token_f1(std::string_view prediction, std::string_view gold);
// ROUGE-L F1 over normalized words: P = LCS/|prediction|, R = LCS/|gold|, F = 2PR/(P+R).
double rouge_l(std::string_view prediction, std::string_view gold);
// 1 when the normalized gold occurs in the normalized prediction (RULER's string_match_part).
double substring_match(std::string_view prediction, std::string_view gold);

using AnswerMetric = double (*)(std::string_view prediction, std::string_view gold);
// Max over the gold answers; 0 for none.
double best_over_golds(AnswerMetric metric, std::string_view prediction, const std::vector<std::string>& golds);

// RULER string_match_all: the fraction of `references` found, case-insensitively, in `prediction`.
double string_match_all(std::string_view prediction, const std::vector<std::string>& references);

}  // namespace kvlab
