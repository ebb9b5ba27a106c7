// Arbitrary bytes as a kvlab-sweep file (lib/sweep/sweep_file.h). load_sweep accepts them or
// throws a bad-input Error; an accepted sweep has at least one run, distinct run ids, and every
// run's kvlab-eval config and label can be produced.
#include <filesystem>
#include <set>

#include "fuzz_support.h"
#include "sweep/sweep_file.h"

KVLAB_FUZZ_TARGET(sweep_file) {
  using namespace kvlab;
  // Relative paths in a sweep file are relative to its directory's parent: the scratch directory.
  static const std::string path = [] {
    std::filesystem::create_directories(fuzz::scratch_dir() + "/sweeps");
    return fuzz::scratch_dir() + "/sweeps/sweep.json";
  }();
  static const SweepDefaults defaults{fuzz::source_dir() + "/datasets/models/tiny-random-llama", fuzz::source_dir()};
  fuzz::write_file(path, data, size);
  fuzz::expect_only_bad_input([&] {
    const Sweep sweep = load_sweep(path, defaults);
    if (sweep.runs.empty()) fuzz::finding("accepted a sweep with no runs");
    std::set<std::string> ids;
    for (const SweepRun& run : sweep.runs) {
      if (!ids.insert(run.id).second) fuzz::finding("two runs share the id " + run.id);
      if (ids.size() > 64) continue;  // the first runs are enough to exercise the rest
      eval_config_for(sweep, run);
      run_label(sweep, run);
      flatten_config(run.config);
    }
  });
}
