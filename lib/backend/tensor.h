#pragma once
// A dense, row-major tensor living in a backend's memory. Tensors are cheap handles:
// copies and views share the allocation, which is freed when the last handle goes.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kvlab {

enum class Device : uint8_t { CPU, CUDA };

struct Tensor {
  std::shared_ptr<void> storage;  // owns the allocation; null for a default Tensor
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  std::vector<int64_t> shape;

  bool empty() const { return data == nullptr; }
  int64_t numel() const;
  int64_t dim(int i) const { return shape.at(size_t(i < 0 ? int(shape.size()) + i : i)); }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype); }
  // Rows of the tensor seen as a matrix [numel / last_dim, last_dim].
  int64_t rows() const { return numel() / shape.back(); }
  int64_t cols() const { return shape.back(); }
  // Same data, another shape with the same element count.
  Tensor reshape(std::vector<int64_t> new_shape) const;
  // Rows [begin, begin + count) along dim 0.
  Tensor slice(int64_t begin, int64_t count) const;
  template <typename T> T* ptr() const { return static_cast<T*>(data); }
  std::string shape_string() const;
};

}  // namespace kvlab
