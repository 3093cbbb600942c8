#pragma once
// The score study's report: DIR/score_study.md (setup, a summary as measured, the runs and the
// width sweep), score_study.json (everything, the plan as given), runs.csv (one row per run),
// curves.csv (every evaluation of every run) and the plots error_vs_iterations, losses,
// error_vs_samples, error_vs_width, distance_vs_width and distance_vs_iterations.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/report/files.hpp"
#include "experiments/score_study.hpp"

namespace dpm::experiments::report {

std::string markdown(const ScoreStudyResults& results);
nlohmann::json to_json(const ScoreStudyResults& results);
Written write(const ScoreStudyResults& results, const std::filesystem::path& dir);

}  // namespace dpm::experiments::report

namespace dpm::experiments {
using report::write;
}  // namespace dpm::experiments
