#pragma once
// A --dump-cache file (lib/run/cache_dump.h) drawn as one heat-map per snapshot: rows are layers
// (or (layer, KV head) pairs where heads of a layer keep different tokens), columns are spans of
// original positions, and a cell's shade is the share of that span the cache still keeps. LaCache's
// ladder shows as a diagonal of kept spans shifting from layer to layer; StreamingLLM as a sink
// column and a recent band.
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

// The self-contained HTML page for `dump` (parsed from the file `source`). Throws Error (exit
// code 2) naming `source` and the field for a file that is not a kvlab cache dump.
std::string cache_map_html(const nlohmann::json& dump, const std::string& source);

}  // namespace kvlab
