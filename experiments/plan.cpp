#include "experiments/plan.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

#include "experiments/report/format.hpp"

namespace dpm::experiments {
namespace {

constexpr size_t kMaxValues = 1000;

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();  // "1,2," has an empty last
  return parts;
}

double parse_number(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !std::isfinite(value))
    throw std::invalid_argument("'" + text + "' is not a number");
  return value;
}

int64_t parse_integer(const std::string& text) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty())
    throw std::invalid_argument("'" + text + "' is not an integer");
  return value;
}

// Runs read(), turning a std::invalid_argument into a PlanError naming `field`.
template <typename Read>
void reading(const std::string& field, Read read) {
  try {
    read();
  } catch (const PlanError&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw PlanError(field, e.what());
  }
}

[[noreturn]] void wrong_type(const std::string& field, const char* expected,
                             const nlohmann::json& got) {
  throw PlanError(field, std::string("expected ") + expected + ", got " + got.dump());
}

}  // namespace

std::vector<double> parse_number_list(const std::string& text) {
  const char separator = text.find(':') != std::string::npos ? ':' : ',';
  std::vector<double> values;
  for (const std::string& part : split(text, separator)) values.push_back(parse_number(part));
  if (values.empty()) throw std::invalid_argument("is empty");
  if (separator == ',') {
    if (values.size() > kMaxValues) throw std::invalid_argument("has more than 1000 values");
    return values;
  }
  if (values.size() != 3 || !(values[2] > 0) || values[1] < values[0])
    throw std::invalid_argument(
        "expected START:STOP:STEP with STEP > 0 and START <= STOP, or a list like -10,0,10; got "
        "'" +
        text + "'");
  if ((values[1] - values[0]) / values[2] >= kMaxValues)
    throw std::invalid_argument("'" + text + "' has more than 1000 values");
  std::vector<double> grid;
  for (int64_t k = 0; values[0] + k * values[2] <= values[1] + 1e-9 * values[2]; ++k)
    grid.push_back(values[0] + k * values[2]);
  return grid;
}

std::vector<int64_t> parse_integer_list(const std::string& text) {
  std::vector<int64_t> values;
  for (const std::string& part : split(text, ',')) values.push_back(parse_integer(part));
  if (values.empty()) throw std::invalid_argument("is empty");
  return values;
}

void field_from_text(const std::string& text, std::string& value) {
  value = text;
}

void field_from_text(const std::string& text, bool& value) {
  if (text != "true" && text != "false")
    throw std::invalid_argument("expected true or false, got '" + text + "'");
  value = text == "true";
}

void field_from_text(const std::string& text, int64_t& value) {
  value = parse_integer(text);
}

void field_from_text(const std::string& text, uint64_t& value) {
  size_t used = 0;
  try {
    if (!text.empty() && text[0] != '-') value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty())
    throw std::invalid_argument("'" + text + "' is not a non-negative integer");
}

void field_from_text(const std::string& text, double& value) {
  value = parse_number(text);
}

void field_from_text(const std::string& text, std::vector<double>& value) {
  value = parse_number_list(text);
}

void field_from_text(const std::string& text, std::vector<int64_t>& value) {
  value = parse_integer_list(text);
}

void field_from_text(const std::string& text, IntegerListOrAuto& value) {
  value.values = text == "auto" ? std::vector<int64_t>{} : parse_integer_list(text);
}

std::string field_text(const std::string& value) {
  return value;
}

std::string field_text(bool value) {
  return value ? "true" : "false";
}

std::string field_text(int64_t value) {
  return std::to_string(value);
}

std::string field_text(uint64_t value) {
  return std::to_string(value);
}

std::string field_text(double value) {
  char buffer[40];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);  // shortest exact
  return std::string(buffer, result.ptr);
}

std::string field_text(const std::vector<double>& value) {
  std::string text;
  for (double v : value) {
    if (!text.empty()) text += ',';
    text += field_text(v);
  }
  return text;
}

std::string field_text(const std::vector<int64_t>& value) {
  std::string text;
  for (int64_t v : value) {
    if (!text.empty()) text += ',';
    text += std::to_string(v);
  }
  return text;
}

std::string field_text(const IntegerListOrAuto& value) {
  return value.is_auto() ? "auto" : field_text(value.values);
}

nlohmann::json field_json(const IntegerListOrAuto& value) {
  return value.is_auto() ? nlohmann::json("auto") : nlohmann::json(value.values);
}

void read_field(const nlohmann::json& json, const std::string& field, std::string& value) {
  if (!json.is_string()) wrong_type(field, "a string", json);
  value = json.get<std::string>();
}

void read_field(const nlohmann::json& json, const std::string& field, bool& value) {
  if (!json.is_boolean()) wrong_type(field, "true or false", json);
  value = json.get<bool>();
}

void read_field(const nlohmann::json& json, const std::string& field, int64_t& value) {
  if (!json.is_number_integer()) wrong_type(field, "an integer", json);
  value = json.get<int64_t>();
}

void read_field(const nlohmann::json& json, const std::string& field, uint64_t& value) {
  if (!json.is_number_unsigned()) wrong_type(field, "a non-negative integer", json);
  value = json.get<uint64_t>();
}

void read_field(const nlohmann::json& json, const std::string& field, double& value) {
  if (!json.is_number()) wrong_type(field, "a number", json);
  value = json.get<double>();
}

void read_field(const nlohmann::json& json, const std::string& field, std::vector<double>& value) {
  if (json.is_string())
    return reading(field, [&] { value = parse_number_list(json.get<std::string>()); });
  if (!json.is_array()) wrong_type(field, "an array of numbers or a list like \"-20:30:5\"", json);
  std::vector<double> values;
  for (const nlohmann::json& item : json) {
    if (!item.is_number()) wrong_type(field, "an array of numbers", json);
    values.push_back(item.get<double>());
  }
  value = std::move(values);
}

void read_field(const nlohmann::json& json, const std::string& field, std::vector<int64_t>& value) {
  if (json.is_string())
    return reading(field, [&] { value = parse_integer_list(json.get<std::string>()); });
  if (!json.is_array()) wrong_type(field, "an array of integers or a list like \"1,2,4\"", json);
  std::vector<int64_t> values;
  for (const nlohmann::json& item : json) {
    if (!item.is_number_integer()) wrong_type(field, "an array of integers", json);
    values.push_back(item.get<int64_t>());
  }
  value = std::move(values);
}

void read_field(const nlohmann::json& json, const std::string& field, IntegerListOrAuto& value) {
  if (json.is_string())
    return reading(field, [&] { field_from_text(json.get<std::string>(), value); });
  if (!json.is_array())
    wrong_type(field, "\"auto\", an array of integers or a list like \"1,2,4\"", json);
  read_field(json, field, value.values);
}

void require_range(const std::string& field, int64_t value, int64_t min_value, int64_t max_value) {
  if (value < min_value || value > max_value)
    throw PlanError(field, std::to_string(value) + " is not in " + std::to_string(min_value) +
                               ".." + std::to_string(max_value));
}

void require_list(const std::string& field, const std::vector<int64_t>& values, int64_t min_value,
                  int64_t max_value) {
  if (values.empty()) throw PlanError(field, "is empty");
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < min_value || values[i] > max_value)
      throw PlanError(field, "'" + std::to_string(values[i]) + "' is not an integer in " +
                                 std::to_string(min_value) + ".." + std::to_string(max_value) +
                                 " (give a list like 1,2,4)");
    for (size_t j = 0; j < i; ++j)
      if (values[j] == values[i])
        throw PlanError(field, "lists " + std::to_string(values[i]) + " twice");
  }
}

void require_list(const std::string& field, const std::vector<double>& values) {
  if (values.empty()) throw PlanError(field, "is empty");
  if (values.size() > kMaxValues) throw PlanError(field, "has more than 1000 values");
  for (double v : values)
    if (!std::isfinite(v)) throw PlanError(field, "holds a number that is not finite");
}

void require_finite(const std::string& field, double value, double min_value, bool inclusive,
                    double max_value) {
  if (!std::isfinite(value) || value < min_value || (!inclusive && value == min_value) ||
      value > max_value)
    throw PlanError(
        field,
        "must be " + std::string(inclusive ? ">= " : "> ") + report::number(min_value) +
            (std::isfinite(max_value) ? " and <= " + report::number(max_value) : std::string()) +
            ", got " + report::number(value));
}

}  // namespace dpm::experiments
