#pragma once
// Progress: the one progress interface of the experiments. A run calls begin() once with the
// number of work units it will execute (its plan's units().size(), the same list it then runs),
// advance() after each unit and finish() at the end; status() says where a long unit is without
// moving the count, and warn() passes on what a user should know about the results.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace dpm {
class ProgressLine;
}

namespace dpm::experiments::report {

class Progress {
 public:
  virtual ~Progress() = default;
  virtual void begin(int64_t total_units) = 0;
  // One unit done; `stage` names it.
  virtual void advance(const std::string& stage) = 0;
  // Inside the current unit: where it is (e.g. "network T=20: bound, 40/400 evaluations").
  virtual void status(const std::string& text) {}
  // Something about the results a user should read (a warning), once.
  virtual void warn(const std::string& message) {}
  virtual void finish() {}
};

// Reports nothing (library callers and tests that do not watch).
class NullProgress final : public Progress {
 public:
  void begin(int64_t) override {}
  void advance(const std::string&) override {}
};

// The terminal's status line (dpm::ProgressLine: rate, ETA, redrawn in place on a terminal, a
// plain line every few seconds in a log) counting units named `unit` ("parts"); warnings go to
// stderr as "dpmlab <label>: warning: ...". `out` nullptr (--quiet): no status line, warnings
// still printed.
class TerminalProgress final : public Progress {
 public:
  TerminalProgress(std::string label, std::string unit, std::FILE* out,
                   double interval_seconds = 1.0);
  ~TerminalProgress() override;

  void begin(int64_t total_units) override;
  void advance(const std::string& stage) override;
  void status(const std::string& text) override;
  void warn(const std::string& message) override;
  void finish() override;

 private:
  std::string label_;
  std::unique_ptr<ProgressLine> line_;
  int64_t done_ = 0;
};

}  // namespace dpm::experiments::report
