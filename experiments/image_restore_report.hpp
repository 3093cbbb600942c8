#pragma once
// The image-restoration experiment's report: DIR/restore.md (the setting, a summary, and per task
// the table of every solver beside the measurement: PSNR and SSIM with standard errors, NFE,
// backward passes, time), restore.json, restore.csv (every entry), one PNG grid per task
// (grid_TASK.png: per image a row of truth | measurement | each solver), the PSNR plot and
// measurements.safetensors (x0 [n, C, H, W]; per task y [n, m] and its operator: for masks the
// observed pixels [C, H, W], else the maps L [H', H] and R [W', W] of Y = L X R^T; per entry the
// images as scored [n, C, H, W]; float32, pixels).
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/image_restore.hpp"
#include "experiments/report/files.hpp"

namespace dpm::experiments::report {

std::string markdown(const ImageRestoreResults& results);
nlohmann::json to_json(const ImageRestoreResults& results);
Written write(const ImageRestoreResults& results, const std::filesystem::path& dir);

}  // namespace dpm::experiments::report

namespace dpm::experiments {
using report::write;
}  // namespace dpm::experiments
