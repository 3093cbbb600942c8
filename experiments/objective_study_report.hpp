#pragma once
// The objective study's report: DIR/objectives.md (also printed: the comparison tables, then what
// was measured), objectives.json (everything, the plan as given), objectives.csv (one row per
// objective) and the plots: mu_t<t> (each objective's empirical Lip(mu_theta(., t)) over training
// beside the exact CME's bounds and value) and certified_bound (each objective's). Each run
// directory keeps its own training report (RUN/report/training.md).
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/objective_study.hpp"
#include "experiments/report/files.hpp"

namespace dpm::experiments::report {

std::string markdown(const ObjectiveStudyResults& results);
nlohmann::json to_json(const ObjectiveStudyResults& results);
Written write(const ObjectiveStudyResults& results, const std::filesystem::path& dir);

}  // namespace dpm::experiments::report

namespace dpm::experiments {
using report::write;
}  // namespace dpm::experiments
