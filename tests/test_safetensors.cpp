// The checkpoint reader refuses every malformed file with an Error naming the file and the
// problem, and never reads outside the mapping.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "test_support.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;

std::string f32_bytes(std::vector<float> v) { return std::string(reinterpret_cast<char*>(v.data()), v.size() * 4); }

std::vector<TensorToWrite> two_tensors() {
  return {{"a", DType::F32, {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6})},
          {"b", DType::BF16, {4}, std::string("\x80\x3f\x00\x40\x40\x40\x80\x40", 8)}};
}

// Writes raw bytes to a fresh file and returns the error message of opening it ("" if none).
std::string open_error(const std::string& bytes) {
  std::string path = testing::temp_dir() + "/model.safetensors";
  testing::write_file(path, bytes);
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitBadInput);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    return e.what();
  }
  return "";
}

// A file whose header is `header` (raw JSON text) followed by `data_bytes` bytes.
std::string with_header(const std::string& header, size_t data_bytes) {
  uint64_t n = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\x01');
}

TEST(Safetensors, ReadsWhatTheWriterWrote) {
  std::string path = testing::temp_dir() + "/ok.safetensors";
  write_safetensors(path, two_tensors(), {{"format", "pt"}});
  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorRecord& a = f->tensors().at("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(static_cast<const float*>(a.data)[5], 6.0f);
  const TensorRecord& b = f->tensors().at("b");
  std::vector<float> vals(4);
  convert_to_f32(b.data, b.dtype, 4, vals.data());
  EXPECT_EQ(vals, (std::vector<float>{1, 2, 3, 4}));
}

TEST(Safetensors, EveryTruncationIsRefused) {
  std::string good = encode_safetensors(two_tensors());
  for (size_t len = 0; len < good.size(); len++) {
    std::string err = open_error(good.substr(0, len));
    EXPECT_FALSE(err.empty()) << "truncated to " << len << " of " << good.size() << " bytes was accepted";
  }
}

TEST(Safetensors, EmptyFile) { EXPECT_NE(open_error("").find("too short"), std::string::npos); }

TEST(Safetensors, HeaderLengthPastEndOfFile) {
  std::string bytes = encode_safetensors(two_tensors());
  uint64_t huge = 1ull << 60;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_NE(open_error(bytes).find("runs past the end"), std::string::npos);
  uint64_t just_past = bytes.size() - 7;
  std::memcpy(bytes.data(), &just_past, 8);
  EXPECT_NE(open_error(bytes).find("runs past the end"), std::string::npos);
}

TEST(Safetensors, HeaderNotJson) {
  EXPECT_NE(open_error(with_header("{\"a\": {\"dtype\": ", 0)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(open_error(with_header("[1, 2]", 0)).find("not a JSON object"), std::string::npos);
}

TEST(Safetensors, ShapeAndByteLengthDisagree) {
  std::string err =
      open_error(with_header(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 12));
  EXPECT_NE(err.find("needs 16 bytes"), std::string::npos) << err;
  EXPECT_NE(err.find("\"w\""), std::string::npos) << err;
}

TEST(Safetensors, OffsetsOutsideTheData) {
  std::string err =
      open_error(with_header(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", 16));
  EXPECT_NE(err.find("outside"), std::string::npos) << err;
  err = open_error(with_header(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 16));
  EXPECT_NE(err.find("outside"), std::string::npos) << err;
}

TEST(Safetensors, OverlappingTensors) {
  std::string err = open_error(with_header(
      R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      12));
  EXPECT_NE(err.find("overlap"), std::string::npos) << err;
}

TEST(Safetensors, DuplicateTensorNames) {
  std::string err = open_error(with_header(
      R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
      8));
  EXPECT_NE(err.find("appears twice"), std::string::npos) << err;
}

TEST(Safetensors, UnsupportedDtypeAndBadShape) {
  EXPECT_NE(open_error(with_header(R"({"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", 1))
                .find("unsupported dtype"),
            std::string::npos);
  EXPECT_NE(open_error(with_header(R"({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4))
                .find("invalid dimension"),
            std::string::npos);
  EXPECT_NE(open_error(with_header(R"({"x": {"dtype": "F32", "shape": [1]}})", 4)).find("data_offsets"),
            std::string::npos);
}

// A copy of the embedded sharded checkpoint that a test may damage.
std::string copy_tiny_llama() {
  std::string dir = testing::temp_dir() + "/tiny";
  fs::copy(testing::source_dir() + "/datasets/models/tiny-random-llama", dir, fs::copy_options::recursive);
  return dir;
}

std::string checkpoint_error(const std::string& dir) {
  try {
    Checkpoint::open(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Checkpoint, OpensShardedCheckpointAndChecksShapes) {
  std::string dir = copy_tiny_llama();
  Checkpoint c = Checkpoint::open(dir);
  EXPECT_EQ(c.files().size(), 2u);
  EXPECT_NO_THROW(c.require("lm_head.weight", {512, 64}));
  try {
    c.require("lm_head.weight", {512, 65});
    FAIL() << "wrong shape accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lm_head.weight"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("[512, 64]"), std::string::npos);
  }
  try {
    c.require("model.layers.9.mlp.up_proj.weight", {1});
    FAIL() << "missing tensor accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is missing"), std::string::npos);
  }
}

TEST(Checkpoint, IndexNamingAMissingShardOrTensor) {
  std::string dir = copy_tiny_llama();
  std::string index_path = dir + "/model.safetensors.index.json";
  nlohmann::json index = nlohmann::json::parse(testing::read_file(index_path));
  index["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors";
  testing::write_file(index_path, index.dump());
  EXPECT_NE(checkpoint_error(dir).find("missing"), std::string::npos);

  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  index["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors";
  testing::write_file(index_path, index.dump());
  std::string err = checkpoint_error(dir);
  EXPECT_NE(err.find("model.extra.weight"), std::string::npos) << err;

  index["weight_map"]["model.extra.weight"] = "../escape.safetensors";
  testing::write_file(index_path, index.dump());
  EXPECT_NE(checkpoint_error(dir).find("outside the model directory"), std::string::npos);
}

TEST(Checkpoint, DirectoryWithoutWeights) {
  std::string dir = testing::temp_dir();
  EXPECT_NE(checkpoint_error(dir).find("no model.safetensors"), std::string::npos);
  EXPECT_NE(checkpoint_error(dir + "/nope").find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace kvlab
