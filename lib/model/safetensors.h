#pragma once
// Hugging Face checkpoints: safetensors files, memory-mapped and validated before any use,
// single-file or sharded through model.safetensors.index.json.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kvlab {

struct TensorRecord {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the file's mapping
  size_t bytes = 0;
  std::string file;            // the file it lives in, for error messages

  int64_t numel() const;
  std::string shape_string() const;
};

// One mapped .safetensors file. Opening checks: header length inside the file, header is a
// JSON object without duplicate names, known dtypes, offsets inside the data area, no two
// tensors overlapping, and shape x dtype size == byte length. Errors name the file and tensor.
class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  size_t file_size() const { return size_; }
  const std::map<std::string, TensorRecord>& tensors() const { return tensors_; }
  // The header's "__metadata__" (free-form string pairs); empty when the file has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorRecord> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: model.safetensors, or the shards an index names.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& model_dir);

  const TensorRecord* find(const std::string& name) const;
  // The tensor `name`, checked to have `shape`; errors name the file and tensor.
  const TensorRecord& require(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::vector<std::string>& files() const { return files_; }
  size_t total_bytes() const;   // tensor data bytes over all files
  size_t tensor_count() const { return index_.size(); }
  // sha256 over config.json and every safetensors file, in file-name order (reads everything).
  std::string content_sha256() const;

 private:
  std::string dir_;
  std::vector<std::string> files_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorRecord*> index_;
};

}  // namespace kvlab
