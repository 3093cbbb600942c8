// The training configs shipped in configs/ (used by scripts/run.sh and docs/results.md): each is
// a valid DpmTrainingConfig whose model builds, and whose learning-rate decay ends with training.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "nn/noise_model.hpp"
#include "trainers/dpm_training.hpp"

namespace fs = std::filesystem;
using namespace dpm;

TEST_CASE("every config in configs/ parses, builds its model and anneals to its last step",
          "[training][configs]") {
  int checked = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(DPMLAB_CONFIGS_DIR)) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path().string());
    std::ifstream in(entry.path());
    const train::DpmTrainingConfig config =
        train::DpmTrainingConfig::from_json(nlohmann::json::parse(in));
    Rng rng(0);
    CHECK(nn::make_noise_model(config.model, rng) != nullptr);
    if (config.lr_schedule && config.lr_schedule->kind == optim::LrScheduleKind::warmup_cosine)
      CHECK(config.lr_schedule->total_steps == config.trainer.max_steps);
    ++checked;
  }
  CHECK(checked >= 4);
}
