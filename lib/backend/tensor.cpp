#include "backend/tensor.h"

#include "core/error.h"

namespace kvlab {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::reshape(std::vector<int64_t> new_shape) const {
  Tensor t = *this;
  t.shape = std::move(new_shape);
  KVLAB_ASSERT(t.numel() == numel());
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t count) const {
  KVLAB_ASSERT(!shape.empty() && begin >= 0 && count >= 0 && begin + count <= shape[0]);
  Tensor t = *this;
  size_t row_bytes = bytes() / size_t(shape[0]);
  t.data = static_cast<char*>(data) + size_t(begin) * row_bytes;
  t.shape[0] = count;
  return t;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace kvlab
