#include "apps/diffusion_flags.hpp"

#include "apps/flag_config.hpp"
#include "diffusion/prediction.hpp"

namespace dpm::cli {

void add_diffusion_flags(CLI::App* command, DiffusionFlags& flags,
                         const DiffusionFlagDefaults& defaults) {
  command->add_option("--T", flags.T, "diffusion steps" + defaults.T)
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  command->add_option("--schedule", flags.schedule, "noise schedule" + defaults.schedule)
      ->check(CLI::IsMember({"paper_linear", "ddpm_linear", "cosine"}));
  command->add_option("--target", flags.target, "what the network predicts" + defaults.target)
      ->check(CLI::IsMember({"eps", "x0", "v"}));
}

void apply_diffusion_flags(const CLI::App* command, const DiffusionFlags& flags,
                           train::DpmTrainingConfig& config) {
  if (flag_given(command, "--T")) config.schedule["T"] = flags.T;
  if (flag_given(command, "--schedule")) config.schedule["kind"] = flags.schedule;
  if (flag_given(command, "--target"))
    config.objective.target = diffusion::parse_prediction_target(flags.target);
}

}  // namespace dpm::cli
