#pragma once
// Writing safetensors files (masks, dumps, test fixtures), atomically.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kvlab {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian data, numel * dtype_size bytes
};

// The file's bytes: 8-byte header length, JSON header (tensors in the given order, data
// offsets packed), data.
std::string encode_safetensors(const std::vector<TensorToWrite>& tensors,
                               const std::map<std::string, std::string>& metadata = {});
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace kvlab
