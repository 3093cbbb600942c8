#include "apps/common.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include "autograd/threading.hpp"
#include "experiments/report/format.hpp"

namespace dpm::cli {

void add_common_flags(CLI::App* command, CommonArgs& args, const std::string& default_out) {
  args.out = default_out;
  command->add_option("--threads", args.threads, "threads (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command->add_option("--seed", args.seed, "random seed")->capture_default_str();
  command->add_option("--out", args.out, "run directory for outputs")->capture_default_str();
  command->add_flag("--quiet", args.quiet, "no progress lines");
  command
      ->add_option("--config", args.config_file,
                   "JSON config (e.g. a run's config.used.json); flags override it")
      ->check(CLI::ExistingFile);
}

void start_run(const CommonArgs& args) {
  set_num_threads(args.threads);
  std::error_code ec;
  std::filesystem::create_directories(args.out, ec);
  if (ec)
    throw std::runtime_error("cannot create run directory '" + args.out + "': " + ec.message());
}

nlohmann::json read_config_file(const CommonArgs& args) {
  if (args.config_file.empty()) return nlohmann::json::object();
  std::ifstream in(args.config_file);
  if (!in) throw std::runtime_error("cannot open config file '" + args.config_file + "'");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error("config file '" + args.config_file + "': " + e.what());
  }
  if (!config.is_object())
    throw std::runtime_error("config file '" + args.config_file + "': expected a JSON object");
  return config;
}

void write_used_config(const CommonArgs& args, const nlohmann::json& config) {
  const std::string path = args.out + "/config.used.json";
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    out << config.dump(2) << '\n';
    if (!out) throw std::runtime_error("cannot write '" + tmp + "'");
  }
  std::filesystem::rename(tmp, path);
}

void print_written(const CommonArgs& args, const experiments::report::Written& written,
                   double seconds) {
  if (!args.quiet) std::cout << written.markdown << "\n";
  std::cout << "Wrote";
  for (size_t i = 0; i < written.files.size(); ++i)
    std::cout << (i == 0 ? " " : ", ") << written.files[i];
  if (!written.plots.empty()) {
    std::cout << " and the plots";
    for (const std::string& png : written.plots) std::cout << " " << png;
    std::cout << " (each beside its gnuplot script)";
  }
  std::cout << " into " << args.out << " in " << experiments::report::duration(seconds) << ".\n";
}

}  // namespace dpm::cli
