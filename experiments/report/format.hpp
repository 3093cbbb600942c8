#pragma once
// The one number formatter of the reports: every number a table, a CSV or a plot data file shows
// goes through one of these, so a figure reads the same wherever it appears.
#include <string>

namespace dpm::experiments::report {

// A number for a person, printf-formatted by `pattern` (one double conversion, e.g. "%.4g",
// "%+.3g"); NaN is "n/a", infinities "inf" and "-inf".
std::string number(double v, const char* pattern = "%.4g");

// A number for a CSV cell: %.10g exactly as printf writes it (also "nan", "inf").
std::string csv_number(double v);

// A number for a data file gnuplot reads: %.10g, and "NaN" (which gnuplot skips) when not finite.
std::string plot_number(double v);

// 10^log10_value for a person. Within a double's range (|log10_value| < 300) the number itself
// (%.3g); beyond it what it is, "> 1e300 (10^1510.9)" or "< 1e-300 (10^-512.3)": a vacuous bound
// reads as vacuous, not as a plausible "7.49e+1510".
std::string power_of_ten(double log10_value);

// A duration for a person: "9.3s", "4m12s", "1h02m"; "?" when not finite or negative.
std::string duration(double seconds);

}  // namespace dpm::experiments::report
