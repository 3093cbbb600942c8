// dpmlab: the command-line front end (train, audit, benchmark diffusion models).
#include <exception>
#include <iostream>

#include "apps/commands.hpp"

int main(int argc, char** argv) {
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
    return app.exit(e) == 0 ? 0 : dpm::cli::kUsageErrorExitCode;
  } catch (const std::exception& e) {
    std::cerr << "dpmlab: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
