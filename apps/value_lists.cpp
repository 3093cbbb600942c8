#include "apps/value_lists.hpp"

#include <stdexcept>

#include <CLI/CLI.hpp>

#include "experiments/plan.hpp"

namespace dpm::cli {

std::vector<double> parse_number_list(const std::string& text, const std::string& flag) {
  try {
    return experiments::parse_number_list(text);
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError(flag, e.what());
  }
}

std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& flag,
                                        int64_t min_value, int64_t max_value) {
  try {
    const std::vector<int64_t> values = experiments::parse_integer_list(text);
    experiments::require_list(flag, values, min_value, max_value);
    return values;
  } catch (const experiments::PlanError& e) {
    throw CLI::ValidationError(flag, e.message());
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError(flag, e.what());
  }
}

}  // namespace dpm::cli
