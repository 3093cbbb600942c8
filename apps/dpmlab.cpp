// dpmlab: the command-line front end (train, audit, benchmark diffusion models).
#include <exception>
#include <iostream>
#include <sstream>
#include <string>

#include "apps/commands.hpp"
#include "distributed/communicator.hpp"

namespace {

// On one rank of several, an error ends every rank: the others would wait for it in their next
// collective.
int fail(const std::string& message, int code) {
  dpm::dist::Communicator& world = dpm::dist::Communicator::world();
  if (world.distributed())
    world.abort(message + " (" + world.describe() + "; ending every rank)", code);
  std::cerr << message << '\n';
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Under an MPI launcher, MPI starts here, before any thread does.
  const dpm::dist::Communicator& world = dpm::dist::Communicator::world();
  CLI::App app{
      "dpmlab: diffusion models from scratch, with Lipschitz audits and denoiser "
      "benchmarks.\nExample: dpmlab model summary --arch unet1d --length 64",
      "dpmlab"};
  app.require_subcommand(1);
  dpm::cli::register_model_command(app);
  dpm::cli::register_demo_command(app);
  dpm::cli::register_gmm_command(app);
  dpm::cli::register_train_command(app);
  dpm::cli::register_sample_command(app);
  dpm::cli::register_audit_command(app);
  dpm::cli::register_denoise_bench_command(app);
  dpm::cli::register_bench_command(app);
  dpm::cli::register_bound_command(app);
  dpm::cli::register_inverse_bench_command(app);
  dpm::cli::register_restore_command(app);
  dpm::cli::register_score_study_command(app);
  dpm::cli::register_training_report_command(app);
  dpm::cli::register_objective_study_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the message (or the help); its own codes for parse errors vary, ours is 2.
    // Every rank parses the same arguments and stops alike: the root alone prints.
    std::ostringstream unprinted;
    const int code = world.is_root() ? app.exit(e) : app.exit(e, unprinted, unprinted);
    return code == 0 ? 0 : dpm::cli::kUsageErrorExitCode;
  } catch (const std::exception& e) {
    return fail(std::string("dpmlab: error: ") + e.what(), 1);
  }
  return 0;
}
