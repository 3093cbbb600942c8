#pragma once
// ConfigReader: strict reading of a model's JSON config. Missing fields take the given
// defaults; a field of the wrong type or range, or a field nobody asked for (a typo), throws
// std::invalid_argument naming the config and the field.
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpm::nn {

class ConfigReader {
 public:
  // context names the config in messages, e.g. "unet1d config".
  ConfigReader(const nlohmann::json& config, std::string context);

  int64_t integer(const std::string& field, int64_t fallback, int64_t min_value = 1);
  // A finite number (integer or floating point) in [min_value, max_value].
  double number(const std::string& field, double fallback,
                double min_value = -std::numeric_limits<double>::max(),
                double max_value = std::numeric_limits<double>::max());
  bool boolean(const std::string& field, bool fallback);
  std::string string(const std::string& field, const std::string& fallback);
  // A string that must be one of `allowed`.
  std::string choice(const std::string& field, const std::string& fallback,
                     const std::vector<std::string>& allowed);
  std::vector<int64_t> integer_list(const std::string& field, const std::vector<int64_t>& fallback,
                                    int64_t min_value = 1);
  // A nested object for a sub-reader; absent or null gives an empty object.
  nlohmann::json object(const std::string& field);
  // Throws if the config holds a field that was never read.
  void finish() const;

 private:
  const nlohmann::json* find(const std::string& field);
  [[noreturn]] void fail(const std::string& field, const std::string& expected,
                         const nlohmann::json& got) const;

  const nlohmann::json& config_;
  std::string context_;
  std::set<std::string> read_;
};

}  // namespace dpm::nn
