#pragma once
// The inverse-problem benchmark's report: DIR/inverse_bench.md (a summary, then per task the
// table of every solver and predictor beside the references, the NFE sweep and the RED-Diff
// ablation), inverse_bench.json, inverse_bench.csv (every entry), measurements.safetensors (what
// was measured on: the clean samples x0 [n, N], and per task and sigma_y the operator A [m, N]
// and the measurements y [n, m], float32) and the NFE plots (NMSE against the NFE, one plot per
// predictor).
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/inverse_bench.hpp"
#include "experiments/report/files.hpp"

namespace dpm::experiments::report {

std::string markdown(const InverseBenchResults& results);
nlohmann::json to_json(const InverseBenchResults& results);
Written write(const InverseBenchResults& results, const std::filesystem::path& dir);

}  // namespace dpm::experiments::report

namespace dpm::experiments {
using report::write;
}  // namespace dpm::experiments
