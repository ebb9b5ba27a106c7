// Arbitrary bytes as a QA dataset in JSON Lines (lib/tasks/jsonl_dataset.h). load_qa_jsonl
// accepts them or throws a bad-input Error, with skipping off and on; with skipping on, every
// non-blank line is either an example or a counted skip.
#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "tasks/jsonl_dataset.h"

KVLAB_FUZZ_TARGET(jsonl_dataset) {
  using namespace kvlab;
  static const std::string path = fuzz::scratch_dir() + "/dataset.jsonl";
  fuzz::write_file(path, data, size);
  fuzz::expect_only_bad_input([&] { load_qa_jsonl(path, false); });
  fuzz::expect_only_bad_input([&] {
    const QaDataset d = load_qa_jsonl(path, true);
    if (d.examples.size() + d.skipped.size() > size_t(d.lines)) fuzz::finding("more examples and skips than lines");
    for (const QaExample& ex : d.examples)
      if (ex.line < 1 || ex.line > d.lines || ex.answers.empty()) fuzz::finding("accepted an inconsistent example");
    skipped_json(d.skipped);
  });
}
