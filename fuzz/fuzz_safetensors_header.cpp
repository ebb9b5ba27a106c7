// Arbitrary bytes as a .safetensors file. SafetensorsFile::open accepts them or throws a
// bad-input Error; what it accepts is consistent (byte lengths match shapes, tensors are disjoint
// and inside the data area) and is read whole, as the loader reads it, so a record pointing past
// the mapping crashes here rather than in a user's run.
#include <algorithm>
#include <cstring>
#include <vector>

#include "fuzz_support.h"
#include "model/safetensors.h"
#include "model/weight_check.h"

KVLAB_FUZZ_TARGET(safetensors_header) {
  using namespace kvlab;
  const std::string path = fuzz::scratch_dir() + "/header.safetensors";
  fuzz::write_file(path, data, size);
  fuzz::expect_only_bad_input([&] {
    std::unique_ptr<SafetensorsFile> f = SafetensorsFile::open(path);
    uint64_t header_len = 0;
    std::memcpy(&header_len, data, 8);  // open() succeeded, so there are 8 bytes
    const size_t data_area = size - 8 - size_t(header_len);
    std::vector<std::pair<const char*, size_t>> spans;
    std::vector<float> converted;
    for (const auto& [name, t] : f->tensors()) {
      if (t.bytes != size_t(t.numel()) * dtype_size(t.dtype)) fuzz::finding("tensor " + name + ": bytes != shape");
      if (t.bytes > data_area) fuzz::finding("tensor " + name + " is larger than the data area");
      spans.emplace_back(static_cast<const char*>(t.data), t.bytes);
      if (t.dtype == DType::I32) continue;
      converted.resize(size_t(t.numel()));
      convert_to_f32(t.data, t.dtype, converted.size(), converted.data());
      try {
        check_weight_values(t);
      } catch (const Error&) {  // NaN or Inf in random data: the loader's refusal, tested elsewhere
      }
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); i++)
      if (spans[i].second && spans[i - 1].first + spans[i - 1].second > spans[i].first)
        fuzz::finding("accepted overlapping tensors");
    if (!spans.empty() && size_t(spans.back().first + spans.back().second - spans.front().first) > data_area)
      fuzz::finding("accepted tensors spanning more than the data area");
  });
}
