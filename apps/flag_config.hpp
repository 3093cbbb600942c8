#pragma once
// FlagConfig: a subcommand's settings from its flags over its --config file. Each value is the
// command line's when the flag was given, else the file's field named like the flag (without the
// dashes, '-' as '_'), else the flag's default. A bad field in the file, or one no flag reads (a
// typo), is a usage error naming --config. The values taken make the run's config.used.json, so
// `--config <run>/config.used.json` repeats the run.
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/common.hpp"
#include "nn/config_reader.hpp"

namespace dpm::cli {

class FlagConfig {
 public:
  FlagConfig(const CLI::App* command, const CommonArgs& common);

  void integer(const std::string& flag, int64_t& value, int64_t min_value = 1);
  void number(const std::string& flag, double& value,
              double min_value = -std::numeric_limits<double>::max());
  void text(const std::string& flag, std::string& value);
  void seed(uint64_t& value);  // --seed

  // Checks that the file held no other fields; returns the values taken (config.used.json).
  nlohmann::json finish() const;

 private:
  // Runs read(), which returns the file's value (or the fallback), and keeps the command line's
  // value when the flag was given.
  template <typename T, typename Read>
  void take(const std::string& flag, T& value, Read read);

  const CLI::App* command_;
  nlohmann::json file_;
  nn::ConfigReader reader_;  // reads file_
  nlohmann::json used_ = nlohmann::json::object();
};

// A flag given on the command line (not merely defaulted).
bool flag_given(const CLI::App* command, const std::string& flag);

// Runs fn; a std::invalid_argument it throws becomes a usage error naming `flag` (exit code 2).
template <typename F>
auto as_usage_error(const std::string& flag, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError(flag, e.what());
  }
}

}  // namespace dpm::cli
