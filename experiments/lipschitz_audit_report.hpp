#pragma once
// The report of the Lipschitz audit (lipschitz_audit.hpp): a summary of the figures that matter,
// then three tables (the network per step, the exact stepwise CME against the hyperparameter
// bounds, the denoiser per SNR), in audit.md (which the command prints); audit.json
// with every number and its kind in a legend; four plots of a few curves each.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/lipschitz_audit.hpp"
#include "experiments/report/files.hpp"

namespace dpm::experiments::report {

// Every number with its kind (certified, empirical, exact, or valid under an assumption) in a
// "legend"; NaN and infinity are written as null.
nlohmann::json to_json(const LipschitzAudit& audit);
std::string markdown(const LipschitzAudit& audit);

// Writes DIR/audit.md, DIR/audit.json, the plot data and scripts, and renders the plots (a
// missing gnuplot is a warning of `command`).
Written write(const LipschitzAudit& audit, const std::filesystem::path& out_dir,
              const std::string& command = "audit");

}  // namespace dpm::experiments::report

namespace dpm::experiments {
// So that write(audit, dir) finds the report writer by the results' namespace (as
// apps/experiment_command.hpp calls it for any experiment).
using report::write;
}  // namespace dpm::experiments
