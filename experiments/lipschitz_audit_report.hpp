#pragma once
// The report of the Lipschitz audit (lipschitz_audit.hpp): a summary of the figures that matter,
// then three tables (the network per step, the exact stepwise CME against the hyperparameter
// bounds, the denoiser per SNR), as markdown (audit.md) and aligned text (a terminal); audit.json
// with every number and its kind in a legend; four plots of a few curves each.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/lipschitz_audit.hpp"
#include "experiments/report/files.hpp"

namespace dpm::experiments::report {

// Every number with its kind (certified, empirical, exact, or valid under an assumption) in a
// "legend"; NaN and infinity are written as null.
nlohmann::json audit_json(const LipschitzAudit& audit);
std::string audit_markdown(const LipschitzAudit& audit);
// The summary and the tables in plain text.
std::string audit_text(const LipschitzAudit& audit);

// Writes DIR/audit.md, DIR/audit.json, the plot data and scripts, and renders the plots (a
// missing gnuplot is a warning of `command`).
Written write(const LipschitzAudit& audit, const std::filesystem::path& out_dir,
              const std::string& command = "audit");

}  // namespace dpm::experiments::report
