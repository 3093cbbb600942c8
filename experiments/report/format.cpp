#include "experiments/report/format.hpp"

#include <cmath>
#include <cstdio>

#include "autograd/progress_line.hpp"

namespace dpm::experiments::report {
namespace {

std::string printf_double(const char* pattern, double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, v);
  return buffer;
}

}  // namespace

std::string number(double v, const char* pattern) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return printf_double(pattern, v);
}

std::string csv_number(double v) {
  return printf_double("%.10g", v);
}

std::string plot_number(double v) {
  return std::isfinite(v) ? printf_double("%.10g", v) : "NaN";
}

std::string power_of_ten(double log10_value) {
  if (!std::isfinite(log10_value)) return number(log10_value);
  if (std::abs(log10_value) < 300) return number(std::pow(10.0, log10_value), "%.3g");
  return (log10_value > 0 ? "> 1e300 (10^" : "< 1e-300 (10^") + printf_double("%.1f", log10_value) +
         ")";
}

std::string duration(double seconds) {
  return ProgressLine::format_duration(seconds);
}

}  // namespace dpm::experiments::report
