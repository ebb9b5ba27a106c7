#pragma once
// SHA-256 of bytes and files (OpenSSL), for the input hashes every report records.
#include <memory>
#include <string>

namespace kvlab {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  void update(const void* data, size_t n);
  void update_file(const std::string& path);  // streams the whole file; Error if unreadable
  std::string hex_digest();                   // finishes the hash

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256_hex(const std::string& bytes);
std::string sha256_file(const std::string& path);

}  // namespace kvlab
