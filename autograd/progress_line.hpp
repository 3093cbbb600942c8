#pragma once
// ProgressLine: one status line for long work, with rate and ETA. On a terminal it redraws in
// place (carriage return); otherwise it prints a plain line at most every `interval` seconds so
// logs stay readable. It lives in the lowest layer because the trainer and the experiments
// (experiments/report/progress.hpp) both draw it.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dpm {

class ProgressLine {
 public:
  // total <= 0: unknown, no ETA. `unit` names what is counted ("steps", "samples").
  ProgressLine(std::string label, int64_t total, std::string unit = "steps",
               std::FILE* out = stderr, double interval_seconds = 0.2);
  ~ProgressLine();

  void set_total(int64_t total) { total_ = total; }
  // Reports progress `done` (absolute) with an extra free-form status; prints when due.
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");  // final line, always printed
  double elapsed_seconds() const;

  static std::string format_duration(double seconds);  // "1h02m", "4m12s", "9.3s"

 private:
  std::string render(int64_t done, const std::string& status) const;

  std::string label_;
  int64_t total_;
  std::string unit_;
  std::FILE* out_;
  double interval_;
  bool tty_;
  bool finished_ = false;
  int64_t last_done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

}  // namespace dpm
