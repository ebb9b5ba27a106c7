// Answer metrics against values worked out by hand from LongBench's and RULER's definitions.
#include <gtest/gtest.h>

#include "tasks/metrics.h"

namespace kvlab {
namespace {

TEST(Metrics, NormalizationFollowsLongBench) {
  // lower -> drop punctuation (a hyphen joins, it does not split) -> drop articles -> collapse.
  EXPECT_EQ(normalize_answer("The  Quick, Brown-Fox!"), "quick brownfox");
  EXPECT_EQ(normalize_answer("An apple a day"), "apple day");
  EXPECT_EQ(normalize_answer("A"), "");
  EXPECT_EQ(normalize_answer("the the  THE"), "");
  // Articles only as whole words.
  EXPECT_EQ(normalize_answer("theatre and anthem, another"), "theatre and anthem another");
  EXPECT_EQ(normalize_answer("the1 a_b"), "the1 ab");  // "_" is punctuation; "the1" is one word
  EXPECT_EQ(normalize_answer("Don't stop"), "dont stop");
  EXPECT_EQ(normalize_answer("  Tab\tseparated\nlines\r\n "), "tab separated lines");
  // Unicode: letters lowercase and count as word characters; NBSP is whitespace.
  EXPECT_EQ(normalize_answer("Ünïcödé THE Café"), "ünïcödé café");
  EXPECT_EQ(normalize_answer("x\u00a0a\u00a0y"), "x y");
  EXPECT_EQ(normalize_answer("théa the"), "théa");
  // Non-ASCII punctuation stays (Python's string.punctuation is ASCII only).
  EXPECT_EQ(normalize_answer("«the» end"), "« » end");
  EXPECT_EQ(normalize_answer(""), "");
}

TEST(Metrics, ExactMatch) {
  EXPECT_EQ(exact_match("The Eiffel Tower.", "eiffel tower"), 1.0);
  EXPECT_EQ(exact_match("Eiffel", "Eiffel Tower"), 0.0);
  EXPECT_EQ(exact_match("a  villain", "A villain!"), 1.0);
}

TEST(Metrics, TokenF1) {
  // pred "cat sat on mat" (4), gold "cat on mat" (3): 3 shared; P 3/4, R 1, F1 = 6/7.
  EXPECT_NEAR(token_f1("The cat sat on the mat", "a cat on a mat"), 6.0 / 7.0, 1e-12);
  // Bags, not sets: 1 shared of 3 predicted; P 1/3, R 1, F1 = 0.5.
  EXPECT_NEAR(token_f1("cat cat cat", "cat"), 0.5, 1e-12);
  // Order does not matter.
  EXPECT_NEAR(token_f1("gunman police", "police gunman"), 1.0, 1e-12);
  EXPECT_EQ(token_f1("dog", "cat"), 0.0);
  EXPECT_EQ(token_f1("the", "a"), 0.0);  // both empty after normalization
  EXPECT_EQ(token_f1("", "cat"), 0.0);
}

TEST(Metrics, RougeL) {
  // [police killed gunman] vs [police kill gunman]: LCS 2; P = R = 2/3.
  EXPECT_NEAR(rouge_l("police killed the gunman", "the police kill the gunman"), 2.0 / 3.0, 1e-12);
  // Order matters, unlike F1: LCS 1 of 2 and 2.
  EXPECT_NEAR(rouge_l("gunman police", "police gunman"), 0.5, 1e-12);
  // [a b c d e] vs [a x c e]: LCS a c e = 3; P 3/5, R 3/4, F = 2/3.
  EXPECT_NEAR(rouge_l("one two three four five", "one six three five"), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(rouge_l("", "x"), 0.0);
}

TEST(Metrics, SubstringAccuracy) {
  EXPECT_EQ(substring_match("It was Caius Marcius, surely.", "caius marcius"), 1.0);
  EXPECT_EQ(substring_match("Marcius", "Caius Marcius"), 0.0);
  EXPECT_EQ(substring_match("anything", "The"), 0.0);  // an empty gold matches nothing
  EXPECT_EQ(substring_match("the mask of night", "The mask-of night"), 0.0);  // "maskof" is one word
}

TEST(Metrics, BestOverGolds) {
  EXPECT_EQ(best_over_golds(token_f1, "cat", {"dog", "cat"}), 1.0);
  EXPECT_NEAR(best_over_golds(token_f1, "a grave man", {"grave", "a grave man", "tomb"}), 1.0, 1e-12);
  EXPECT_NEAR(best_over_golds(token_f1, "grave", {"a grave man", "tomb"}), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(best_over_golds(exact_match, "x", {}), 0.0);
}

TEST(Metrics, StringMatchAllIsRulers) {
  EXPECT_NEAR(string_match_all("Values: 1234567 and 7654321.", {"1234567", "7654321", "1111111"}), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(string_match_all("ABC", {"abc"}), 1.0);        // case-insensitive
  EXPECT_EQ(string_match_all("12 34567", {"1234567"}), 0.0);  // no normalization beyond case
  EXPECT_EQ(string_match_all("anything", {}), 0.0);
}

}  // namespace
}  // namespace kvlab
