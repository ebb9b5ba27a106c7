#include "core/environment.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "git_sha.h"

namespace kvlab {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string utc_timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json environment_json(const std::string& backend_description) {
  struct utsname u {};
  uname(&u);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return {{"kvlab_version", KVLAB_VERSION},
          {"git_sha", KVLAB_GIT_SHA},
          {"compiler", KVLAB_COMPILER},
          {"os", std::string(u.sysname) + " " + u.release},
          {"host", host},
          {"cpu", cpu_model()},
          {"cpu_threads", std::thread::hardware_concurrency()},
          {"backend", backend_description},
          {"time_utc", utc_timestamp()}};
}

}  // namespace kvlab
