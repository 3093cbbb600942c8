#include "experiments/report/progress.hpp"

#include <iostream>

#include "autograd/progress_line.hpp"

namespace dpm::experiments::report {

TerminalProgress::TerminalProgress(std::string label, std::string unit, std::FILE* out,
                                   double interval_seconds)
    : label_(label),
      line_(std::make_unique<ProgressLine>(std::move(label), 0, std::move(unit), out,
                                           interval_seconds)) {}

TerminalProgress::~TerminalProgress() = default;

void TerminalProgress::begin(int64_t total_units) {
  line_->set_total(total_units);
}

void TerminalProgress::advance(const std::string& stage) {
  line_->update(++done_, stage);
}

void TerminalProgress::status(const std::string& text) {
  line_->update(done_, text);
}

void TerminalProgress::warn(const std::string& message) {
  std::cerr << "dpmlab " << label_ << ": warning: " << message << "\n";
}

void TerminalProgress::finish() {
  line_->finish();
}

}  // namespace dpm::experiments::report
