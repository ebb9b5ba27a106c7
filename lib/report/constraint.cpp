#include "report/constraint.h"

#include <cmath>
#include <cstdlib>

#include "core/byte_size.h"
#include "core/error.h"
#include "report/fields.h"

namespace kvlab {

namespace {

const char* kTextFields[] = {"model", "task", "policy", "method", "budget"};

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::string text_field(const RunRow& r, const std::string& field) {
  if (field == "model") return r.model;
  if (field == "task") return r.task;
  if (field == "policy") return r.policy;
  if (field == "method") return r.method;
  return r.budget;
}

const char* op_text(Constraint::Op op) {
  switch (op) {
    case Constraint::Less:
      return "<";
    case Constraint::LessEqual:
      return "≤";
    case Constraint::Greater:
      return ">";
    case Constraint::GreaterEqual:
      return "≥";
    case Constraint::Equal:
      return "=";
    case Constraint::NotEqual:
      return "≠";
  }
  return "?";
}

}  // namespace

Constraint parse_constraint(const std::string& text) {
  const std::string form = "--constraint \"" + text + "\": give FIELD OP VALUE, e.g. kv_bytes<=4GiB or task=passkey";
  Constraint c;
  c.text = text;
  const size_t at = text.find_first_of("<>=!");
  if (at == std::string::npos) fail(form);
  const size_t len = at + 1 < text.size() && text[at + 1] == '=' ? 2 : 1;
  const std::string sym = text.substr(at, len);
  static const std::pair<const char*, Constraint::Op> kOps[] = {
      {"<=", Constraint::LessEqual}, {">=", Constraint::GreaterEqual}, {"!=", Constraint::NotEqual},
      {"==", Constraint::Equal},     {"<", Constraint::Less},          {">", Constraint::Greater},
      {"=", Constraint::Equal}};
  bool known = false;
  for (const auto& [s, op] : kOps)
    if (sym == s) {
      c.op = op;
      known = true;
    }
  if (!known) fail(form);
  c.field = trim(text.substr(0, at));
  const std::string value = trim(text.substr(at + len));
  if (c.field.empty() || value.empty()) fail(form);
  for (const char* f : kTextFields)
    if (c.field == f) {
      if (c.op != Constraint::Equal && c.op != Constraint::NotEqual)
        fail("--constraint \"" + text + "\": " + c.field + " is text; compare it with = or !=");
      c.numeric = false;
      c.word = value;
      return c;
    }
  try {
    find_field(c.field);
  } catch (const Error& e) {
    fail("--constraint \"" + text + "\": " + e.what() + " or a text field: model, task, policy, method, budget");
  }
  std::optional<double> n = parse_byte_size(value);
  if (!n) {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0' || !std::isfinite(v)) fail(form + " (\"" + value + "\" is not a number)");
    n = v;
  }
  c.number = *n;
  return c;
}

bool Constraint::holds(const RunRow& row) const {
  if (!numeric) {
    const bool same = text_field(row, field) == word;
    return op == Equal ? same : !same;
  }
  const std::optional<double> v = row.value(field);
  if (!v) return false;
  switch (op) {
    case Less:
      return *v < number;
    case LessEqual:
      return *v <= number;
    case Greater:
      return *v > number;
    case GreaterEqual:
      return *v >= number;
    case Equal:
      return *v == number;
    case NotEqual:
      return *v != number;
  }
  return false;
}

std::string Constraint::describe() const {
  if (!numeric) return field + " " + op_text(op) + " " + word;
  return field + " " + op_text(op) + " " + format_value(find_field(field), number);
}

}  // namespace kvlab
