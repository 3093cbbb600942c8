#pragma once
// Flags every run-producing subcommand shares, and the run directory they write into.
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "experiments/report/files.hpp"

namespace dpm::cli {

struct CommonArgs {
  int threads = 0;          // 0: all hardware threads
  uint64_t seed = 0;
  std::string out;          // the run directory
  bool quiet = false;       // no progress lines
  std::string config_file;  // JSON config; flags given on the command line override it
};

// Adds --threads, --seed, --out (default `default_out`), --quiet and --config to `command`.
void add_common_flags(CLI::App* command, CommonArgs& args, const std::string& default_out);

// Applies the thread count and creates the run directory; call first in a command's callback.
void start_run(const CommonArgs& args);

// Reads --config (a JSON object) if given; {} otherwise. Errors name the file and the position.
nlohmann::json read_config_file(const CommonArgs& args);

// Writes <out>/config.used.json (pretty, atomically): everything needed to repeat the run.
void write_used_config(const CommonArgs& args, const nlohmann::json& config);

// Prints the report's markdown (unless --quiet) and the files it wrote, after `seconds`.
void print_written(const CommonArgs& args, const experiments::report::Written& written,
                   double seconds);

}  // namespace dpm::cli
