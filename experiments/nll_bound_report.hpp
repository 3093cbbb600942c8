#pragma once
// The variational bound's report: DIR/bound.md (a summary, then the table of every bound and
// its terms), bound.json (the bounds, the plan as given) and bound_per_step.csv (every term L_t
// of every bound).
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/nll_bound.hpp"
#include "experiments/report/files.hpp"

namespace dpm::experiments::report {

std::string markdown(const NllBoundResults& results);
nlohmann::json to_json(const NllBoundResults& results);
Written write(const NllBoundResults& results, const std::filesystem::path& dir);

}  // namespace dpm::experiments::report

namespace dpm::experiments {
// So that write(results, dir) finds the report writers by the results' namespace (as
// apps/experiment_command.hpp calls it for any experiment).
using report::write;
}  // namespace dpm::experiments
