#pragma once
// Sizes as people write them: "4GiB", "512MiB", "1.5GB", "1000000", "64K". K/M/G/T and KiB..TiB are
// powers of 1024, KB..TB powers of 1000; a bare number or "B" is bytes.
#include <optional>
#include <string>

namespace kvlab {

// nullopt when `text` is not a size (or is negative or not finite).
std::optional<double> parse_byte_size(const std::string& text);

}  // namespace kvlab
