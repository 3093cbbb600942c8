#include "nn/config_reader.hpp"

#include <sstream>
#include <stdexcept>

namespace dpm::nn {

ConfigReader::ConfigReader(const nlohmann::json& config, std::string context)
    : config_(config), context_(std::move(context)) {
  if (!config.is_object())
    throw std::invalid_argument(context_ + ": expected a JSON object, got " + config.dump());
}

const nlohmann::json* ConfigReader::find(const std::string& field) {
  read_.insert(field);
  auto it = config_.find(field);
  return it == config_.end() ? nullptr : &*it;
}

void ConfigReader::fail(const std::string& field, const std::string& expected,
                        const nlohmann::json& got) const {
  throw std::invalid_argument(context_ + ": field '" + field + "' must be " + expected + ", got " +
                              got.dump());
}

int64_t ConfigReader::integer(const std::string& field, int64_t fallback, int64_t min_value) {
  const nlohmann::json* value = find(field);
  if (!value) return fallback;
  if (!value->is_number_integer() || value->get<int64_t>() < min_value)
    fail(field, "an integer >= " + std::to_string(min_value), *value);
  return value->get<int64_t>();
}

double ConfigReader::number(const std::string& field, double fallback, double min_value,
                            double max_value) {
  const nlohmann::json* value = find(field);
  if (!value) return fallback;
  if (!value->is_number() || !(value->get<double>() >= min_value) ||
      !(value->get<double>() <= max_value)) {
    std::ostringstream expected;
    expected << "a number in [" << min_value << ", " << max_value << "]";
    fail(field, expected.str(), *value);
  }
  return value->get<double>();
}

bool ConfigReader::boolean(const std::string& field, bool fallback) {
  const nlohmann::json* value = find(field);
  if (!value) return fallback;
  if (!value->is_boolean()) fail(field, "true or false", *value);
  return value->get<bool>();
}

std::string ConfigReader::string(const std::string& field, const std::string& fallback) {
  const nlohmann::json* value = find(field);
  if (!value) return fallback;
  if (!value->is_string()) fail(field, "a string", *value);
  return value->get<std::string>();
}

std::string ConfigReader::choice(const std::string& field, const std::string& fallback,
                                 const std::vector<std::string>& allowed) {
  std::string value = string(field, fallback);
  for (const auto& option : allowed)
    if (value == option) return value;
  fail(field, "one of " + nlohmann::json(allowed).dump(), value);
}

std::vector<int64_t> ConfigReader::integer_list(const std::string& field,
                                                const std::vector<int64_t>& fallback,
                                                int64_t min_value) {
  const nlohmann::json* value = find(field);
  if (!value) return fallback;
  std::string expected = "a non-empty list of integers >= " + std::to_string(min_value);
  if (!value->is_array() || value->empty()) fail(field, expected, *value);
  std::vector<int64_t> out;
  for (const auto& item : *value) {
    if (!item.is_number_integer() || item.get<int64_t>() < min_value) fail(field, expected, *value);
    out.push_back(item.get<int64_t>());
  }
  return out;
}

nlohmann::json ConfigReader::object(const std::string& field) {
  const nlohmann::json* value = find(field);
  if (!value || value->is_null()) return nlohmann::json::object();
  if (!value->is_object()) fail(field, "a JSON object", *value);
  return *value;
}

void ConfigReader::finish() const {
  for (const auto& [field, value] : config_.items())
    if (!read_.count(field))
      throw std::invalid_argument(context_ + ": unknown field '" + field + "'");
}

}  // namespace dpm::nn
