#include "sweep/shard.h"

#include <algorithm>

#include "core/error.h"

namespace kvlab {

std::string Shard::name() const { return std::to_string(index) + "-of-" + std::to_string(count); }

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      fail("--shard \"" + text + "\" must be I/N with 0 <= I < N (e.g. 0/4)");
    return std::stoi(s);
  };
  if (slash == std::string::npos) number("");
  Shard s{number(text.substr(0, slash)), number(text.substr(slash + 1))};
  if (s.count < 1 || s.index >= s.count) fail("--shard \"" + text + "\" must be I/N with 0 <= I < N (e.g. 0/4)");
  return s;
}

std::vector<const SweepRun*> select_shard(const std::vector<SweepRun>& runs, const Shard& shard) {
  std::vector<const SweepRun*> by_id;
  for (const SweepRun& r : runs) by_id.push_back(&r);
  std::stable_sort(by_id.begin(), by_id.end(), [](const SweepRun* a, const SweepRun* b) { return a->id < b->id; });
  std::vector<const SweepRun*> mine;
  for (size_t p = 0; p < by_id.size(); p++)
    if (int(p % size_t(shard.count)) == shard.index) mine.push_back(by_id[p]);
  std::sort(mine.begin(), mine.end(), [](const SweepRun* a, const SweepRun* b) { return a->index < b->index; });
  return mine;
}

}  // namespace kvlab
