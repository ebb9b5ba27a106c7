#pragma once
// A user's constraint on runs, as kvlab-report --constraint takes it: FIELD OP VALUE, e.g.
// "kv_bytes<=4GiB", "decode_tokens_per_s>=20", "accuracy>0.9", "task=passkey", "policy!=full".
// Numeric fields are those of fields.h (sizes may carry units: KiB, MiB, GiB, KB, MB, GB);
// text fields are model, task, policy, method and budget.
#include <string>

#include "report/run_row.h"

namespace kvlab {

struct Constraint {
  enum Op { Less, LessEqual, Greater, GreaterEqual, Equal, NotEqual };
  std::string text;  // as given
  std::string field;
  Op op = LessEqual;
  bool numeric = true;
  double number = 0;
  std::string word;

  // A run without the field does not meet it.
  bool holds(const RunRow& row) const;
  // "kv_bytes ≤ 4.00 GiB": the constraint in plain words, numbers formatted as the report prints them.
  std::string describe() const;
};

// Error (exit code 2) saying what is wrong and what the form is.
Constraint parse_constraint(const std::string& text);

}  // namespace kvlab
