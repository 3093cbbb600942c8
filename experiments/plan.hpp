#pragma once
// What every experiment's Plan shares (docs/design.md, "The experiments layer"). A Plan is a
// struct of typed fields with defaults that lists them once, for its JSON and for the flag table
// of its command:
//
//   struct MyPlan {
//     int64_t samples = 64;
//     std::vector<double> snr{-10, 0, 10};
//     template <typename Self, typename Visit>
//     static void fields(Self& plan, Visit&& visit) {  // the JSON name of each field, in order
//       visit("samples", plan.samples);
//       visit("snr", plan.snr);
//     }
//     void validate() const;  // throws PlanError naming the field
//   };
//
// plan_to_json / plan_from_json are the JSON round trip over fields(); field_from_text reads a
// field from the text a user types ("-20:30:5"), field_text writes it back for a help text.
// Field types: bool, int64_t, uint64_t, double, std::string, std::vector<double>,
// std::vector<int64_t>, IntegerListOrAuto, an enum with Choices<E> (below) and a std::vector of
// one.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpm::experiments {

// A bad plan field: field() is its JSON name, what() "<field>: <message>". Errors about the
// plan as a whole have an empty field.
class PlanError : public std::invalid_argument {
 public:
  PlanError(const std::string& field, const std::string& message)
      : std::invalid_argument(field.empty() ? message : field + ": " + message),
        field_(field),
        message_(message) {}
  const std::string& field() const { return field_; }
  const std::string& message() const { return message_; }  // what() without the field

 private:
  std::string field_, message_;
};

// The names of an enum's values, specialised beside the enum:
//   template <> struct Choices<Estimators> {
//     static constexpr std::array<std::pair<Estimators, const char*>, 2> values{
//         {{Estimators::all, "all"}, {Estimators::cheap, "cheap"}}};
//   };
template <typename E>
struct Choices;

template <typename E>
concept Choice = std::is_enum_v<E> && requires {
  Choices<E>::values;
};

template <Choice E>
const char* choice_name(E value) {
  for (const auto& [v, name] : Choices<E>::values)
    if (v == value) return name;
  return "?";
}

// "a, b or c".
template <Choice E>
std::string choice_list() {
  std::string list;
  const size_t n = Choices<E>::values.size();
  for (size_t i = 0; i < n; ++i)
    list += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + Choices<E>::values[i].second;
  return list;
}

template <Choice E>
E parse_choice(const std::string& text) {
  for (const auto& [v, name] : Choices<E>::values)
    if (text == name) return v;
  throw std::invalid_argument("expected " + choice_list<E>() + ", got '" + text + "'");
}

// "START:STOP:STEP" (both ends included, STEP > 0) or a comma-separated list "A,B,C" of finite
// numbers; at most 1000 values. Throws std::invalid_argument saying what is wrong.
std::vector<double> parse_number_list(const std::string& text);
// A comma-separated list "1,2,4" of integers.
std::vector<int64_t> parse_integer_list(const std::string& text);

// A list of integers the experiment may choose itself: "auto" (values empty) or "1,10,100".
struct IntegerListOrAuto {
  std::vector<int64_t> values;  // empty: auto
  bool is_auto() const { return values.empty(); }
  bool operator==(const IntegerListOrAuto&) const = default;
};

// A field from a user's text; throws std::invalid_argument saying what was expected.
void field_from_text(const std::string& text, std::string& value);
void field_from_text(const std::string& text, bool& value);
void field_from_text(const std::string& text, int64_t& value);
void field_from_text(const std::string& text, uint64_t& value);
void field_from_text(const std::string& text, double& value);
void field_from_text(const std::string& text, std::vector<double>& value);
void field_from_text(const std::string& text, std::vector<int64_t>& value);
void field_from_text(const std::string& text, IntegerListOrAuto& value);
template <Choice E>
void field_from_text(const std::string& text, E& value) {
  value = parse_choice<E>(text);
}
// "a,b": each once.
template <Choice E>
void field_from_text(const std::string& text, std::vector<E>& value) {
  std::vector<E> chosen;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const E item = parse_choice<E>(text.substr(start, end - start));
    for (E seen : chosen)
      if (seen == item)
        throw std::invalid_argument("lists '" + text.substr(start, end - start) + "' twice");
    chosen.push_back(item);
    start = end + 1;
  }
  value = std::move(chosen);
}

// A field as a user would type it (the defaults in a help text).
std::string field_text(const std::string& value);
std::string field_text(bool value);
std::string field_text(int64_t value);
std::string field_text(uint64_t value);
std::string field_text(double value);
std::string field_text(const std::vector<double>& value);
std::string field_text(const std::vector<int64_t>& value);
std::string field_text(const IntegerListOrAuto& value);
template <Choice E>
std::string field_text(E value) {
  return choice_name(value);
}
template <Choice E>
std::string field_text(const std::vector<E>& value) {
  std::string text;
  for (E item : value) {
    if (!text.empty()) text += ',';
    text += choice_name(item);
  }
  return text;
}

// A field as JSON, and back: a number list is an array (its text form, "-20:30:5", is read too),
// IntegerListOrAuto "auto" or an array, an enum its name, a list of them an array of names (or
// "a,b"). Reading throws PlanError naming `field`.
template <typename T>
nlohmann::json field_json(const T& value) {
  if constexpr (Choice<T>) {
    return choice_name(value);
  } else if constexpr (requires { typename T::value_type; } && !std::is_same_v<T, std::string>) {
    if constexpr (Choice<typename T::value_type>) {
      nlohmann::json names = nlohmann::json::array();
      for (auto item : value) names.push_back(choice_name(item));
      return names;
    } else {
      return value;
    }
  } else {
    return value;
  }
}

nlohmann::json field_json(const IntegerListOrAuto& value);

void read_field(const nlohmann::json& json, const std::string& field, std::string& value);
void read_field(const nlohmann::json& json, const std::string& field, bool& value);
void read_field(const nlohmann::json& json, const std::string& field, int64_t& value);
void read_field(const nlohmann::json& json, const std::string& field, uint64_t& value);
void read_field(const nlohmann::json& json, const std::string& field, double& value);
void read_field(const nlohmann::json& json, const std::string& field, std::vector<double>& value);
void read_field(const nlohmann::json& json, const std::string& field, std::vector<int64_t>& value);
void read_field(const nlohmann::json& json, const std::string& field, IntegerListOrAuto& value);

// A string read with field_from_text (an enum's name, "a,b" for a list), else an array of names.
template <typename T>
requires Choice<T> || Choice<typename T::value_type>
void read_field(const nlohmann::json& json, const std::string& field, T& value) {
  try {
    if (json.is_string()) return field_from_text(json.get<std::string>(), value);
    if constexpr (!Choice<T>) {
      if (json.is_array()) {
        std::string text;
        for (const nlohmann::json& item : json) {
          if (!item.is_string()) throw std::invalid_argument("expected an array of names");
          if (!text.empty()) text += ',';
          text += item.get<std::string>();
        }
        return field_from_text(text, value);
      }
    }
  } catch (const std::invalid_argument& e) {
    throw PlanError(field, e.what());
  }
  throw PlanError(field, "expected a name, got " + json.dump());
}

template <typename Plan>
nlohmann::json plan_to_json(const Plan& plan) {
  nlohmann::json json = nlohmann::json::object();
  Plan::fields(plan, [&](const char* name, const auto& value) { json[name] = field_json(value); });
  return json;
}

// Strict: missing fields keep their defaults, an unknown field is a PlanError naming it. Does not
// validate (the caller's from_json does, after merging what it needs).
template <typename Plan>
Plan plan_from_json(const nlohmann::json& json, Plan plan = Plan{}) {
  if (!json.is_object()) throw PlanError("", "expected a JSON object, got " + json.dump());
  std::set<std::string> known;
  Plan::fields(plan, [&](const char* name, auto& value) {
    known.insert(name);
    if (json.contains(name)) read_field(json.at(name), name, value);
  });
  for (const auto& item : json.items())
    if (!known.count(item.key())) throw PlanError(item.key(), "unknown field");
  return plan;
}

// fn()'s value; an exception it throws (other than a PlanError) becomes a PlanError naming
// `field`: for reading the files a plan field names.
template <typename F>
auto as_plan_error(const std::string& field, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const PlanError&) {
    throw;
  } catch (const std::exception& e) {
    throw PlanError(field, e.what());
  }
}

// Checks shared by the plans' validate(): each throws PlanError naming `field`.
void require_range(const std::string& field, int64_t value, int64_t min_value, int64_t max_value);
void require_list(const std::string& field, const std::vector<int64_t>& values, int64_t min_value,
                  int64_t max_value);  // non-empty, each in range, each once
void require_list(const std::string& field, const std::vector<double>& values);  // 1..1000 finite
// finite, >= min_value (> when !inclusive) and <= max_value
void require_finite(const std::string& field, double value, double min_value, bool inclusive,
                    double max_value = INFINITY);

}  // namespace dpm::experiments
