#include "sweep/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

namespace kvlab {

std::string format_duration(double seconds) {
  const long s = long(std::max(0.0, seconds) + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

Progress::Progress(size_t to_run, size_t workers, bool terminal, std::FILE* out)
    : to_run_(to_run),
      workers_(std::max<size_t>(1, workers)),
      terminal_(terminal),
      out_(out),
      start_(std::chrono::steady_clock::now()) {}

double Progress::eta_seconds() const {
  if (done_ == 0) return -1;
  const size_t left = to_run_ - std::min(done_, to_run_);
  return seconds_sum_ / double(done_) * double(left) / double(std::min(workers_, std::max<size_t>(1, left)));
}

void Progress::started(const std::string& id, const std::string& label) {
  current_ = id + " " + label;
  if (terminal_) draw();
}

void Progress::finished(const std::string& id, const std::string& label, const RunOutcome& o) {
  done_++;
  seconds_sum_ += o.seconds;
  const double eta = eta_seconds();
  char head[64];
  std::snprintf(head, sizeof head, "[%zu/%zu]", done_, to_run_);
  std::string line;
  if (o.status == RunOutcome::Ok) {
    if (terminal_) {  // the bar says it
      draw();
      return;
    }
    char tail[96];
    std::snprintf(tail, sizeof tail, "  %.1f s  ETA %s", o.seconds, eta < 0 ? "?" : format_duration(eta).c_str());
    line = std::string(head) + " ok      " + id + "  " + label + tail;
  } else if (o.status == RunOutcome::Interrupted) {
    line = std::string(head) + " stopped " + id + "  " + label + " (interrupted; it runs again next time)";
  } else {
    line = std::string(head) + " FAILED  " + id + "  " + label + " (exit " + std::to_string(o.exit_code) +
           "): " + o.message;
  }
  if (terminal_) clear();
  std::fprintf(out_, "kvlab-sweep: %s\n", line.c_str());
  if (terminal_) draw();
  std::fflush(out_);
}

void Progress::tick() {
  if (terminal_) draw();
}

void Progress::finish() {
  if (terminal_) clear();
  std::fflush(out_);
}

void Progress::clear() { std::fprintf(out_, "\r\033[K"); }

void Progress::draw() {
  constexpr int kBar = 24;
  const int filled = to_run_ ? int(double(kBar) * double(done_) / double(to_run_)) : kBar;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = eta_seconds();
  std::string line = "[" + std::string(size_t(filled), '#') + std::string(size_t(kBar - filled), '.') + "] " +
                     std::to_string(done_) + "/" + std::to_string(to_run_) + "  elapsed " + format_duration(elapsed) +
                     "  ETA " + (eta < 0 ? std::string("?") : format_duration(eta));
  if (!current_.empty() && done_ < to_run_) line += "  now: " + current_;
  struct winsize ws = {};
  const size_t width = ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col : 100;
  if (line.size() >= width) line.resize(width - 1);
  clear();
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
}

}  // namespace kvlab
