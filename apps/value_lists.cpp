#include "apps/value_lists.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <CLI/CLI.hpp>

namespace dpm::cli {
namespace {

constexpr size_t kMaxValues = 1000;

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();  // "1,2," has an empty last
  return parts;
}

double parse_number(const std::string& text, const std::string& flag) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !std::isfinite(value))
    throw CLI::ValidationError(flag, "'" + text + "' is not a number");
  return value;
}

}  // namespace

std::vector<double> parse_number_list(const std::string& text, const std::string& flag) {
  const char separator = text.find(':') != std::string::npos ? ':' : ',';
  std::vector<double> values;
  for (const std::string& part : split(text, separator)) values.push_back(parse_number(part, flag));
  if (values.empty()) throw CLI::ValidationError(flag, "is empty");
  if (separator == ',') {
    if (values.size() > kMaxValues) throw CLI::ValidationError(flag, "has more than 1000 values");
    return values;
  }
  if (values.size() != 3 || !(values[2] > 0) || values[1] < values[0])
    throw CLI::ValidationError(flag,
                               "expected START:STOP:STEP with STEP > 0 and START <= STOP, or a "
                               "list like -10,0,10; got '" +
                                   text + "'");
  if ((values[1] - values[0]) / values[2] >= kMaxValues)
    throw CLI::ValidationError(flag, "'" + text + "' has more than 1000 values");
  std::vector<double> grid;
  for (int64_t k = 0; values[0] + k * values[2] <= values[1] + 1e-9 * values[2]; ++k)
    grid.push_back(values[0] + k * values[2]);
  return grid;
}

std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& flag,
                                        int64_t min_value, int64_t max_value) {
  std::vector<int64_t> values;
  for (const std::string& part : split(text, ',')) {
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || part.empty() || value < min_value || value > max_value)
      throw CLI::ValidationError(flag, "'" + part + "' is not an integer in " +
                                           std::to_string(min_value) + ".." +
                                           std::to_string(max_value) + " (give a list like 1,2,4)");
    if (std::find(values.begin(), values.end(), value) != values.end())
      throw CLI::ValidationError(flag, "lists " + part + " twice");
    values.push_back(value);
  }
  if (values.empty()) throw CLI::ValidationError(flag, "is empty");
  return values;
}

}  // namespace dpm::cli
