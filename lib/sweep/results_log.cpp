#include "sweep/results_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace kvlab {

namespace {

[[noreturn]] void io_error(const std::string& path, const char* what) {
  fail(path + ": " + what + ": " + std::strerror(errno));
}

// An open file descriptor holding an exclusive flock until destroyed.
class LockedFile {
 public:
  LockedFile(const std::string& path, int flags) : path_(path) {
    fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd_ < 0) io_error(path, "cannot open");
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) io_error(path, "cannot lock");
  }
  ~LockedFile() { ::close(fd_); }  // closing releases the lock
  LockedFile(const LockedFile&) = delete;
  LockedFile& operator=(const LockedFile&) = delete;
  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
};

off_t file_size(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) io_error(path, "cannot stat");
  return st.st_size;
}

// With the lock held: the offset just past the last newline (0 when there is none).
off_t end_of_last_line(int fd, const std::string& path) {
  off_t end = file_size(fd, path);
  char buf[65536];
  while (end > 0) {
    const off_t start = end > off_t(sizeof buf) ? end - off_t(sizeof buf) : 0;
    const ssize_t n = ::pread(fd, buf, size_t(end - start), start);
    if (n < 0) {
      if (errno == EINTR) continue;
      io_error(path, "cannot read");
    }
    for (ssize_t i = n - 1; i >= 0; i--)
      if (buf[i] == '\n') return start + i + 1;
    end = start;
  }
  return 0;
}

size_t cut_torn_tail(int fd, const std::string& path) {
  const off_t size = file_size(fd, path);
  const off_t keep = end_of_last_line(fd, path);
  if (keep == size) return 0;
  if (::ftruncate(fd, keep) != 0) io_error(path, "cannot cut its torn last line");
  return size_t(size - keep);
}

void sync_directory(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void append_jsonl(const std::string& path, const std::string& line) {
  const bool existed = std::filesystem::exists(path);
  LockedFile f(path, O_RDWR | O_APPEND | O_CREAT);
  cut_torn_tail(f.fd(), path);
  const off_t before = file_size(f.fd(), path);
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(f.fd(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      // Take the partial line back off; should that fail too, the next append cuts it.
      const bool cut = ::ftruncate(f.fd(), before) == 0;
      fail(path + ": cannot append: " + why + (cut ? "" : " (a partial line remains until the next append)"));
    }
    done += size_t(n);
  }
  if (::fsync(f.fd()) != 0) io_error(path, "cannot flush");
  if (!existed) sync_directory(path);
}

size_t repair_jsonl_tail(const std::string& path) {
  if (!std::filesystem::exists(path)) return 0;
  LockedFile f(path, O_RDWR);
  return cut_torn_tail(f.fd(), path);
}

JsonlContent read_jsonl(const std::string& path) {
  JsonlContent out;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (!std::filesystem::exists(path)) return out;
    fail(path + ": cannot read");
  }
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  size_t start = 0, line = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    line++;
    if (end == std::string::npos) {
      out.torn_bytes = text.size() - start;
      break;
    }
    const std::string_view body(text.data() + start, end - start);
    if (!body.empty()) {
      nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        fail(path + ":" + std::to_string(line) + ": not a JSON object (" + std::string(body.substr(0, 80)) + ")");
      out.records.push_back(std::move(j));
      out.line_numbers.push_back(line);
    }
    start = end + 1;
  }
  return out;
}

}  // namespace kvlab
