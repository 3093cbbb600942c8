#pragma once
// The denoising benchmark's report: DIR/denoise_bench.md (a summary, then every table),
// denoise_bench.json (the entries, the plan as given and as run), one CSV per part (nmse.csv,
// steps.csv, resampling.csv, mc.csv, mismatch.csv) and gnuplot plots, each of the few curves it
// is about (nmse_vs_snr: the references and each predictor's mean forwarding; the oracle's and
// the network's estimators apart; one estimator family per mismatch plot).
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/denoise_bench.hpp"
#include "experiments/report/files.hpp"

namespace dpm::experiments::report {

std::string markdown(const DenoiseBenchResults& results);
// The NMSE table's four views (NMSE, gap to the CME, evaluations, wall time) as markdown: rows
// (predictor, T, estimator) in order of first appearance, columns the SNRs ascending; the
// predictor column when some entry has a predictor label.
std::string nmse_tables(const std::vector<diffusion::DenoiseBenchEntry>& entries);
nlohmann::json to_json(const DenoiseBenchResults& results);
// Writes everything into `dir` (which must exist); gnuplot's warnings name `command`.
Written write(const DenoiseBenchResults& results, const std::filesystem::path& dir,
              const std::string& command = "denoise-bench");

}  // namespace dpm::experiments::report

namespace dpm::experiments {
// So that write(results, dir) finds the report writers by the results' namespace (as
// apps/experiment_command.hpp calls it for any experiment).
using report::write;
}  // namespace dpm::experiments
