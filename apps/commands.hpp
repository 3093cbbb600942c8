#pragma once
// The dpmlab subcommands: each cmd_*.cpp defines one register_*_command(), which adds its
// subcommand, options and callback to the root app. main() lives in dpmlab.cpp.
#include <CLI/CLI.hpp>

namespace dpm::cli {

// Exit code of every usage error (bad flag, bad value, flags that do not fit together).
inline constexpr int kUsageErrorExitCode = 2;

void register_model_command(CLI::App& app);  // dpmlab model summary | init | check
// dpmlab model check: adds its subcommand to `model` (called by register_model_command).
void register_model_check_command(CLI::App& model);
void register_demo_command(CLI::App& app);           // dpmlab demo
void register_gmm_command(CLI::App& app);            // dpmlab gmm make | fit | cme
void register_train_command(CLI::App& app);          // dpmlab train
void register_sample_command(CLI::App& app);         // dpmlab sample
void register_audit_command(CLI::App& app);          // dpmlab audit
void register_denoise_bench_command(CLI::App& app);  // dpmlab denoise-bench
void register_bench_command(CLI::App& app);          // dpmlab bench
void register_bound_command(CLI::App& app);          // dpmlab bound
void register_inverse_bench_command(CLI::App& app);  // dpmlab inverse-bench
void register_restore_command(CLI::App& app);        // dpmlab restore
void register_score_study_command(CLI::App& app);    // dpmlab score-study
void register_training_report_command(CLI::App& app);  // dpmlab training-report
void register_objective_study_command(CLI::App& app);  // dpmlab objective-study

}  // namespace dpm::cli
