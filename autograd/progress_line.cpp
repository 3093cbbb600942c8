#include "autograd/progress_line.hpp"

#include <unistd.h>

#include <cmath>

namespace dpm {

ProgressLine::ProgressLine(std::string label, int64_t total, std::string unit, std::FILE* out,
                           double interval_seconds)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      out_(out),
      interval_(interval_seconds),
      tty_(out != nullptr && isatty(fileno(out))),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {
  // Plain logs get a line every few seconds, not five a second.
  if (!tty_ && interval_ < 5.0) interval_ = 5.0;
}

ProgressLine::~ProgressLine() {
  if (!finished_ && tty_ && out_) std::fputc('\n', out_);
}

double ProgressLine::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressLine::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  else if (seconds < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(seconds) / 60,
                  static_cast<int>(seconds) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(seconds) / 3600,
                  static_cast<int>(seconds) / 60 % 60);
  return buf;
}

std::string ProgressLine::render(int64_t done, const std::string& status) const {
  double elapsed = elapsed_seconds();
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  char buf[256];
  std::string line = label_;
  if (total_ > 0) {
    std::snprintf(buf, sizeof buf, " %lld/%lld %s (%.0f%%)", static_cast<long long>(done),
                  static_cast<long long>(total_), unit_.c_str(),
                  100.0 * static_cast<double>(done) / static_cast<double>(total_));
  } else {
    std::snprintf(buf, sizeof buf, " %lld %s", static_cast<long long>(done), unit_.c_str());
  }
  line += buf;
  std::snprintf(buf, sizeof buf, " | %.3g %s/s", rate, unit_.c_str());
  line += buf;
  if (total_ > 0 && rate > 0)
    line += " | ETA " + format_duration(static_cast<double>(total_ - done) / rate);
  line += " | " + format_duration(elapsed);
  if (!status.empty()) line += " | " + status;
  return line;
}

void ProgressLine::update(int64_t done, const std::string& status) {
  last_done_ = done;
  if (!out_) return;
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_print_).count() < interval_) return;
  last_print_ = now;
  if (tty_)
    std::fprintf(out_, "\r\033[K%s", render(done, status).c_str());
  else
    std::fprintf(out_, "%s\n", render(done, status).c_str());
  std::fflush(out_);
}

void ProgressLine::finish(const std::string& status) {
  finished_ = true;
  if (!out_) return;
  std::fprintf(out_, "%s%s\n", tty_ ? "\r\033[K" : "", render(last_done_, status).c_str());
  std::fflush(out_);
}

}  // namespace dpm
