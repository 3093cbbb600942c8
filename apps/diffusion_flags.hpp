#pragma once
// --T, --schedule and --target: the diffusion settings that `train` and `model import` both take
// over a training config's.
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "trainers/dpm_training.hpp"

namespace dpm::cli {

struct DiffusionFlags {
  std::string schedule, target;
  int64_t T = 0;
};

// Adds the three flags to `command`; `defaults` ends each help text, e.g. " (default: 300)".
struct DiffusionFlagDefaults {
  std::string T, schedule, target;
};
void add_diffusion_flags(CLI::App* command, DiffusionFlags& flags,
                         const DiffusionFlagDefaults& defaults = {});

// Puts the flags given on the command line over `config`'s schedule and objective.
void apply_diffusion_flags(const CLI::App* command, const DiffusionFlags& flags,
                           train::DpmTrainingConfig& config);

}  // namespace dpm::cli
