#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/json_excerpt.h"
#include "core/sha256.h"

namespace kvlab {

namespace fs = std::filesystem;
using nlohmann::json;

// A header beyond this is not a checkpoint but a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 256ull << 20;

int64_t TensorRecord::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorRecord::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// Parses the header JSON, refusing duplicate tensor names (plain parsing keeps the last one).
json parse_header(const char* text, size_t n, const std::string& path) {
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header = json::parse(text, text + n, on_event, false);
  if (header.is_discarded()) fail(path + ": safetensors header is not valid JSON (corrupt or truncated file)");
  if (!duplicate.empty()) fail(path + ": tensor \"" + duplicate + "\" appears twice in the header");
  if (!header.is_object()) fail(path + ": safetensors header is not a JSON object");
  return header;
}

}  // namespace

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, size_);
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path + ": not a regular file");
  }
  f->size_ = size_t(st.st_size);
  if (f->size_ < 8) {
    ::close(fd);
    fail(path + ": file is " + std::to_string(f->size_) + " bytes, too short for a safetensors header");
  }
  f->map_ = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (f->map_ == MAP_FAILED) {
    f->map_ = nullptr;
    fail(path + ": cannot map: " + std::strerror(errno));
  }
  const char* base = static_cast<const char*>(f->map_);

  uint64_t header_len;
  std::memcpy(&header_len, base, 8);  // little-endian u64, as the format states (x86/ARM hosts)
  if (header_len > kMaxHeaderBytes || header_len > f->size_ - 8)
    fail(path + ": header length " + std::to_string(header_len) + " runs past the end of the " +
         std::to_string(f->size_) + "-byte file (truncated or corrupt)");
  json header = parse_header(base + 8, header_len, path);
  const char* data = base + 8 + header_len;
  const size_t data_size = f->size_ - 8 - header_len;

  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path + ": __metadata__ is not a JSON object of strings");
      for (auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail(path + ": __metadata__ entry \"" + key + "\" is " + json_excerpt(value) + ", not a string");
        f->metadata_.emplace(key, value.get<std::string>());
      }
      continue;
    }
    std::string where = path + ": tensor \"" + name + "\"";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      fail(where + ": entry needs dtype, shape and data_offsets");
    TensorRecord t;
    t.name = name;
    t.file = path;
    if (!entry["dtype"].is_string()) fail(where + ": dtype is not a string");
    t.dtype = dtype_from_safetensors(entry["dtype"].get<std::string>(), where);
    const json& shape = entry["shape"];
    if (!shape.is_array()) fail(where + ": shape is not a list");
    uint64_t numel = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40))
        fail(where + ": shape " + json_excerpt(shape) + " has an invalid dimension");
      t.shape.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
      if (numel > (1ull << 40)) fail(where + ": shape " + json_excerpt(shape) + " is impossibly large");
    }
    const json& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(where + ": data_offsets must be two non-negative integers");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           "] lie outside the " + std::to_string(data_size) + "-byte data area (truncated file?)");
    if (numel * dtype_size(t.dtype) != end - begin)
      fail(where + ": shape " + t.shape_string() + " of " + dtype_name(t.dtype) + " needs " +
           std::to_string(numel * dtype_size(t.dtype)) + " bytes but data_offsets span " +
           std::to_string(end - begin));
    t.data = data + begin;
    t.bytes = end - begin;
    spans.push_back({begin, end, name});
    f->tensors_.emplace(name, std::move(t));
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); i++)
    if (spans[i].begin < spans[i - 1].end)
      fail(path + ": tensors \"" + spans[i - 1].name + "\" and \"" + spans[i].name + "\" overlap");
  return f;
}

Checkpoint Checkpoint::open(const std::string& model_dir) {
  Checkpoint c;
  c.dir_ = model_dir;
  std::error_code ec;  // the throwing overloads would turn a path too long or unreadable into a non-Error
  std::string index_path = model_dir + "/model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;  // tensor -> file, for sharded checkpoints
  if (!fs::is_directory(model_dir, ec)) fail(model_dir + ": not a directory");
  if (fs::exists(index_path, ec)) {
    std::ifstream in(index_path);
    if (!in) fail(index_path + ": cannot open: " + std::strerror(errno));
    json index = json::parse(in, nullptr, false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
        !index["weight_map"].is_object())
      fail(index_path + ": not a valid index (needs a \"weight_map\" object)");
    std::set<std::string> files;
    for (auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) fail(index_path + ": weight_map entry \"" + name + "\" is not a file name");
      std::string fname = file.get<std::string>();
      if (fname.find_first_of(std::string("/\0", 2)) != std::string::npos || fname.find("..") != std::string::npos)
        fail(index_path + ": weight_map entry \"" + name + "\" names a path outside the model directory");
      weight_map[name] = fname;
      files.insert(fname);
    }
    c.files_.assign(files.begin(), files.end());
  } else if (fs::exists(model_dir + "/model.safetensors", ec)) {
    c.files_.push_back("model.safetensors");
  } else {
    fail(model_dir + ": no model.safetensors or model.safetensors.index.json");
  }

  for (const std::string& fname : c.files_) {
    std::string path = model_dir + "/" + fname;
    if (!fs::exists(path, ec)) fail(path + ": shard named by the index is missing" + (ec ? " (" + ec.message() + ")" : ""));
    auto shard = std::shared_ptr<SafetensorsFile>(SafetensorsFile::open(path));
    for (auto& [name, rec] : shard->tensors()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(name);
        if (it == weight_map.end() || it->second != fname) continue;  // the index decides where a tensor lives
      }
      if (!c.index_.emplace(name, &rec).second)
        fail(path + ": tensor \"" + name + "\" is also in another file of the checkpoint");
    }
    c.shards_.push_back(std::move(shard));
  }
  for (auto& [name, fname] : weight_map)
    if (!c.index_.count(name))
      fail(model_dir + "/" + fname + ": tensor \"" + name + "\" named by the index is not in this file");
  return c;
}

const TensorRecord* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorRecord& Checkpoint::require(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorRecord* t = find(name);
  if (!t) fail(dir_ + ": tensor \"" + name + "\" is missing from the checkpoint");
  if (t->shape != shape) {
    TensorRecord expected;
    expected.shape = shape;
    fail(t->file + ": tensor \"" + name + "\" has shape " + t->shape_string() + " but the config needs " +
         expected.shape_string());
  }
  return *t;
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (auto& [name, t] : index_) n += t->bytes;
  return n;
}

std::string Checkpoint::content_sha256() const {
  Sha256 h;
  h.update_file(dir_ + "/config.json");
  for (const auto& shard : shards_) h.update_file(shard->path());
  return h.hex_digest();
}

}  // namespace kvlab
