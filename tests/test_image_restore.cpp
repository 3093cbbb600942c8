// Image restoration as an experiment (experiments/image_restore.hpp): its plan's JSON round trip
// and validation, the unit list, the map between pixels and the network's units, the scores
// against the images the run keeps, determinism, the errors naming the field, and the report's
// files. The network is an untrained 2-D U-Net on 12 x 12 images: the plumbing is under test here,
// the restoration quality is measured in docs/results.md.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "datasets/data_files.hpp"
#include "datasets/image_folder.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/inverse/image_quality.hpp"
#include "distributed/communicator.hpp"
#include "experiments/image_restore.hpp"
#include "experiments/image_restore_report.hpp"
#include "tests/temp_dir.hpp"

namespace ex = dpm::experiments;
namespace fs = std::filesystem;
using dpm::Shape;
using dpm::Tensor;
using dpm::testing::TempDir;

namespace {

constexpr int64_t kSide = 12, kImages = 5;
constexpr double kMeanPixel = 0.25, kScale = 0.5;

// kImages gray PNGs of kSide x kSide in `dir`/images, smooth so that they survive 8-bit rounding.
fs::path write_images(const fs::path& dir) {
  const fs::path folder = dir / "images";
  fs::create_directories(folder);
  for (int64_t i = 0; i < kImages; ++i) {
    Tensor image = Tensor::zeros({1, 1, kSide, kSide});
    for (int64_t p = 0; p < kSide * kSide; ++p)
      image.data()[p] = static_cast<float>(0.5 + 0.4 * std::sin(0.3 * (p % kSide) + 0.5 * i) *
                                                     std::cos(0.2 * (p / kSide)));
    dpm::datasets::write_png_grid((folder / ("img" + std::to_string(i) + ".png")).string(), image,
                                  1, 0);
  }
  return folder;
}

// An untrained 2-D U-Net saved as `dpmlab train` saves one: its data metadata says it takes
// [1, kSide, kSide] samples normalised by (x - kMeanPixel) / kScale.
std::string write_network(const fs::path& dir, int64_t T) {
  dpm::Rng rng(7);
  dpm::diffusion::DpmCheckpoint checkpoint{
      dpm::nn::make_noise_model({{"arch", "unet2d"}, {"data_channels", 1}}, rng),
      dpm::diffusion::Schedule::paper_linear(T),
      {},
      {}};
  dpm::datasets::Normalization normalization{std::vector<double>(kSide * kSide, kMeanPixel),
                                             kScale};
  const std::vector<int64_t> shape{1, kSide, kSide};
  checkpoint.metadata[dpm::datasets::kTrainingDataMetadataKey] = nlohmann::json{
      {"source", "images"},
      {"sample_shape", shape},
      {"model_shape", shape},
      {"normalization",
       dpm::datasets::normalization_to_json(normalization)}}.dump();
  const std::string path = (dir / "network.safetensors").string();
  dpm::diffusion::save_dpm_checkpoint(path, checkpoint);
  return path;
}

ex::ImageRestorePlan small_plan(const fs::path& dir) {
  ex::ImageRestorePlan plan = ex::ImageRestorePlan::quick();
  plan.checkpoint = write_network(dir, 10);
  plan.data = write_images(dir).string();
  plan.first_image = 1;
  plan.images = 3;
  plan.grid_images = 2;
  plan.box_size = 4;
  plan.red_diff_steps = 3;
  plan.dps_steps = 3;
  plan.pigdm_steps = 3;
  plan.ddrm_steps = 3;
  return plan;
}

std::string field_of(const ex::ImageRestorePlan& plan) {
  try {
    plan.validate();
  } catch (const ex::PlanError& e) {
    return e.field();
  }
  return "";
}

std::string run_error_field(const ex::ImageRestorePlan& plan) {
  ex::report::NullProgress progress;
  try {
    ex::run(plan, progress);
  } catch (const ex::PlanError& e) {
    return e.field();
  }
  return "";
}

}  // namespace

TEST_CASE("the restore plan round-trips through JSON and names the field it rejects", "[restore]") {
  ex::ImageRestorePlan plan;
  plan.checkpoint = "net.safetensors";
  plan.tasks = {ex::RestoreTask::sr4, ex::RestoreTask::mask};
  plan.mask = "mask.png";
  plan.blur_singular_floor = 0.0;
  plan.red_diff_start = dpm::diffusion::inverse::RedDiffStart::adjoint;
  plan.solvers = {ex::InverseSolver::ddrm};
  const nlohmann::json json = plan.to_json();
  CHECK(json.at("tasks") == nlohmann::json{"sr4", "mask"});
  CHECK(json.at("red_diff_start") == "adjoint");
  CHECK(ex::ImageRestorePlan::from_json(json).to_json() == json);

  auto with = [&](auto change) {
    ex::ImageRestorePlan changed = plan;
    change(changed);
    return field_of(changed);
  };
  CHECK(with([](auto& p) { p.checkpoint.clear(); }) == "checkpoint");
  CHECK(with([](auto& p) { p.images = 0; }) == "images");
  CHECK(with([](auto& p) { p.tasks.clear(); }) == "tasks");
  CHECK(with([](auto& p) { p.mask.clear(); }) == "mask");  // the task 'mask' needs the file
  CHECK(with([](auto& p) { p.tasks = {ex::RestoreTask::box}; }) == "tasks");  // a file, no task
  CHECK(with([](auto& p) { p.missing = 1.0; }) == "missing");
  CHECK(with([](auto& p) { p.sigma_y = 0.0; }) == "sigma_y");
  CHECK(with([](auto& p) { p.blur_singular_floor = -1.0; }) == "blur_singular_floor");
  CHECK(with([](auto& p) { p.grid_images = p.images + 1; }) == "grid_images");
  CHECK(with([](auto& p) { p.ddrm_steps = 0; }) == "ddrm_steps");
  CHECK_THROWS_WITH(ex::ImageRestorePlan::from_json({{"no_such_field", 1}}),
                    Catch::Contains("no_such_field"));
}

TEST_CASE("the restore units measure each task before its solvers", "[restore]") {
  ex::ImageRestorePlan plan = ex::ImageRestorePlan::quick();
  plan.tasks = {ex::RestoreTask::blur, ex::RestoreTask::box};
  plan.solvers = {ex::InverseSolver::ddrm, ex::InverseSolver::dps};
  plan.dps_steps = 0;  // every step of T
  const std::vector<ex::ImageRestoreUnit> units = plan.units(7);
  REQUIRE(units.size() == 6);
  CHECK(units[0].kind == ex::ImageRestoreUnitKind::measure);
  CHECK(units[0].task == ex::RestoreTask::blur);
  CHECK(units[1].solver == ex::InverseSolver::ddrm);
  CHECK(units[1].steps == plan.ddrm_steps);
  CHECK(units[2].steps == 7);
  CHECK(units[3].task == ex::RestoreTask::box);
  CHECK(units[5].stage() == "box: dps (7 steps)");
}

TEST_CASE("restore maps pixels to the network's units and back, and scores what it keeps",
          "[restore]") {
  TempDir tmp("dpm_restore");
  ex::ImageRestorePlan plan = small_plan(tmp.path);
  // RED-Diff that barely moves stays at its start A^+ y', which in pixels is y where a mask
  // observes and the normalisation's mean elsewhere: only if y' = (y - A mean) / scale and
  // x = scale x' + mean are both right.
  plan.tasks = {ex::RestoreTask::box, ex::RestoreTask::random, ex::RestoreTask::sr2,
                ex::RestoreTask::blur};
  plan.solvers = {ex::InverseSolver::red_diff, ex::InverseSolver::ddrm};
  plan.red_diff_lr = 1e-12;
  plan.sigma_y = 1e-7;
  ex::report::NullProgress progress;
  const ex::ImageRestoreResults results = ex::run(plan, progress);

  REQUIRE(results.entries.size() == 12);
  REQUIRE(results.restored.size() == 12);
  CHECK(results.image_shape == std::vector<int64_t>{1, kSide, kSide});
  CHECK(results.T == 10);
  const Tensor all = dpm::datasets::load_image_folder(plan.data, dpm::datasets::ColorMode::gray);
  const int64_t numel = kSide * kSide;
  REQUIRE(results.x0.size() == static_cast<size_t>(plan.images * numel));
  for (int64_t i = 0; i < plan.images * numel; ++i)
    REQUIRE(results.x0[i] == all.data()[plan.first_image * numel + i]);

  for (size_t e = 0; e < results.entries.size(); ++e) {
    const ex::ImageRestoreEntry& entry = results.entries[e];
    INFO(choice_name(entry.task) << ", " << entry.method);
    REQUIRE(entry.finite);
    const std::vector<float>& x = results.restored[e];
    for (float v : x) REQUIRE((v >= 0.0f && v <= 1.0f));
    // The scores are those of the images the run keeps.
    const std::vector<double> psnr = dpm::diffusion::inverse::psnr_per_image(
        x.data(), results.x0.data(), plan.images, 1, kSide, kSide, 1.0);
    double mean = 0;
    for (double p : psnr) mean += p / plan.images;
    CHECK(entry.psnr == Approx(mean).epsilon(1e-12));
    CHECK(entry.ssim <= 1.0);
    if (entry.method == "red-diff" && entry.task != ex::RestoreTask::sr2 &&
        entry.task != ex::RestoreTask::blur) {
      const std::vector<float>& observed =
          results.measurements[entry.task == ex::RestoreTask::box ? 0 : 1].observed;
      REQUIRE(observed.size() == static_cast<size_t>(numel));
      for (int64_t i = 0; i < plan.images * numel; ++i) {
        const double expected = observed[i % numel] > 0 ? results.x0[i] : kMeanPixel;
        REQUIRE(x[i] == Approx(expected).margin(1e-5));
      }
    }
    if (entry.method == "measurement" && entry.task == ex::RestoreTask::sr2)
      // A^+ y of a block average repeats each block's mean over the block.
      for (int64_t r = 0; r < kSide; r += 2)
        for (int64_t c = 0; c < kSide; c += 2) {
          double block = 0;
          for (int64_t dr = 0; dr < 2; ++dr)
            for (int64_t dc = 0; dc < 2; ++dc) block += results.x0[(r + dr) * kSide + c + dc] / 4;
          CHECK(x[r * kSide + c + 1] == Approx(block).margin(1e-5));
        }
  }
  CHECK(results.entries[0].method == "measurement");
  CHECK(results.entries[1].evaluations == plan.red_diff_steps);
  CHECK(results.entries[2].evaluations == plan.ddrm_steps);
  CHECK(results.measurements[0].rows == numel - plan.box_size * plan.box_size);
  CHECK(results.measurements[2].rows == numel / 4);
  CHECK(results.measurements[2].observed.empty());
}

TEST_CASE("restore gives the same restorations for the same seed, others for another seed",
          "[restore]") {
  TempDir tmp("dpm_restore_seed");
  ex::ImageRestorePlan plan = small_plan(tmp.path);
  plan.tasks = {ex::RestoreTask::random};
  ex::report::NullProgress progress;
  const ex::ImageRestoreResults first = ex::run(plan, progress);
  const ex::ImageRestoreResults again = ex::run(plan, progress);
  CHECK(first.restored == again.restored);
  plan.seed = 1;
  const ex::ImageRestoreResults other = ex::run(plan, progress);
  CHECK(other.measurements[0].y != first.measurements[0].y);
}

// Also run under `mpirun -np 2` (ctest's mpi_test_image_restore_np2): each solver unit then runs
// on one rank and the restorations are shared.
TEST_CASE("restore over the ranks of the run gives the single process's restorations",
          "[restore][distributed]") {
  TempDir tmp("dpm_restore_ranks");
  const ex::ImageRestorePlan plan = small_plan(tmp.path);
  ex::report::NullProgress progress;
  const ex::ImageRestoreResults alone = ex::run(plan, progress, dpm::dist::Communicator::self());
  const ex::ImageRestoreResults shared = ex::run(plan, progress, dpm::dist::Communicator::world());
  CHECK(shared.restored == alone.restored);
  REQUIRE(shared.entries.size() == alone.entries.size());
  for (size_t i = 0; i < alone.entries.size(); ++i) {
    INFO("entry " << i << ": " << alone.entries[i].method);
    CHECK(shared.entries[i].method == alone.entries[i].method);
    CHECK(shared.entries[i].psnr == alone.entries[i].psnr);
    CHECK(shared.entries[i].ssim == alone.entries[i].ssim);
    CHECK(shared.entries[i].evaluations == alone.entries[i].evaluations);
  }
}

TEST_CASE("restore names the field when the files do not fit the plan", "[restore]") {
  TempDir tmp("dpm_restore_errors");
  const ex::ImageRestorePlan plan = small_plan(tmp.path);
  auto with = [&](auto change) {
    ex::ImageRestorePlan changed = plan;
    change(changed);
    return run_error_field(changed);
  };
  CHECK(with([](auto& p) { p.checkpoint = "missing.safetensors"; }) == "checkpoint");
  CHECK(with([](auto& p) { p.data = "no-such-folder"; }) == "data");
  CHECK(with([&](auto& p) {
          p.data = "fashion-mnist";
          p.data_dir = (tmp.path / "empty").string();
        }) == "data_dir");
  CHECK(with([](auto& p) { p.images = kImages; }) == "images");  // from image 1: one too many
  CHECK(with([](auto& p) { p.box_size = kSide; }) == "box_size");
  CHECK(with([](auto& p) { p.ddrm_steps = 11; }) == "ddrm_steps");  // T = 10
  CHECK(with([](auto& p) { p.blur_singular_floor = 5.0; }) == "blur_singular_floor");

  const fs::path small_mask = tmp.path / "small_mask.png";
  dpm::datasets::write_png_grid(small_mask.string(), Tensor::ones({1, 1, 8, 8}), 1, 0);
  CHECK(with([&](auto& p) {
          p.tasks = {ex::RestoreTask::mask};
          p.mask = small_mask.string();
        }) == "mask");
  ex::ImageRestorePlan wrong_size = plan;
  wrong_size.tasks = {ex::RestoreTask::mask};
  wrong_size.mask = small_mask.string();
  ex::report::NullProgress progress;
  CHECK_THROWS_WITH(ex::run(wrong_size, progress),
                    Catch::Contains("8x8") && Catch::Contains("12x12"));
}

TEST_CASE("a diverged solver is reported as such and its report still writes", "[restore]") {
  TempDir tmp("dpm_restore_diverged");
  ex::ImageRestorePlan plan = small_plan(tmp.path);
  plan.tasks = {ex::RestoreTask::random};
  plan.solvers = {ex::InverseSolver::dps, ex::InverseSolver::ddrm};
  plan.dps_zeta = 1e300;  // the first guided step overflows
  ex::report::NullProgress progress;
  const ex::ImageRestoreResults results = ex::run(plan, progress);
  REQUIRE(results.entries.size() == 3);
  CHECK_FALSE(results.entries[1].finite);
  CHECK(results.entries[2].finite);
  for (float v : results.restored[1]) REQUIRE((v >= 0.0f && v <= 1.0f));
  const fs::path out = tmp.path / "report";
  fs::create_directories(out);
  const ex::report::Written written = ex::write(results, out);
  CHECK(written.markdown.find("| dps | 3 | diverged (non-finite) |") != std::string::npos);
  CHECK(fs::exists(out / "grid_random.png"));
}

TEST_CASE("restore applies a user's mask PNG and writes its report", "[restore]") {
  TempDir tmp("dpm_restore_report");
  ex::ImageRestorePlan plan = small_plan(tmp.path);
  Tensor mask = Tensor::ones({1, 1, kSide, kSide});
  for (int64_t p = 0; p < kSide * kSide; p += 3) mask.data()[p] = 0.0f;  // every third missing
  plan.mask = (tmp.path / "mask.png").string();
  dpm::datasets::write_png_grid(plan.mask, mask, 1, 0);
  plan.tasks = {ex::RestoreTask::mask, ex::RestoreTask::sr4};
  ex::report::NullProgress progress;
  const ex::ImageRestoreResults results = ex::run(plan, progress);
  REQUIRE(results.measurements.size() == 2);
  const std::vector<float>& observed = results.measurements[0].observed;
  for (int64_t p = 0; p < kSide * kSide; ++p) CHECK(observed[p] == (p % 3 == 0 ? 0.0f : 1.0f));
  CHECK(results.measurements[0].rows == kSide * kSide - (kSide * kSide + 2) / 3);

  const fs::path out = tmp.path / "report";
  fs::create_directories(out);
  const ex::report::Written written = ex::write(results, out);
  for (const std::string& name : written.files) CHECK(fs::exists(out / name));
  CHECK(written.markdown.find("## mask " + plan.mask) != std::string::npos);
  CHECK(written.markdown.find("| ddrm | 3 |") != std::string::npos);
  // Per shown image a row: truth, measurement and the four solvers, 12-pixel tiles 2 apart.
  const Tensor grid =
      dpm::datasets::load_image((out / "grid_sr4.png").string(), dpm::datasets::ColorMode::gray);
  CHECK(grid.shape() == Shape{1, 2 * kSide + 3 * 2, 6 * kSide + 7 * 2});
  const dpm::SafeTensors saved = dpm::read_safetensors((out / "measurements.safetensors").string());
  CHECK(saved.get("x0").shape() == Shape{plan.images, 1, kSide, kSide});
  CHECK(saved.get("y: sr4").shape() == Shape{plan.images, kSide * kSide / 16});
  CHECK(saved.get("observed: mask").shape() == Shape{1, kSide, kSide});
  // The saved maps rebuild the measurements: y = L x0 R^T up to the noise sigma_y.
  const Tensor L = saved.get("L: sr4"), R = saved.get("R: sr4");
  REQUIRE(L.shape() == Shape{kSide / 4, kSide});
  REQUIRE(R.shape() == Shape{kSide / 4, kSide});
  const Tensor x0 = saved.get("x0"), y = saved.get("y: sr4");
  double worst = 0;
  for (int64_t n = 0; n < plan.images; ++n)
    for (int64_t i = 0; i < kSide / 4; ++i)
      for (int64_t j = 0; j < kSide / 4; ++j) {
        double v = 0;
        for (int64_t a = 0; a < kSide; ++a)
          for (int64_t b = 0; b < kSide; ++b)
            v += L.data()[i * kSide + a] * x0.data()[(n * kSide + a) * kSide + b] *
                 R.data()[j * kSide + b];
        worst = std::max(worst, std::abs(v - y.data()[(n * kSide / 4 + i) * kSide / 4 + j]));
      }
  CHECK(worst < 6 * plan.sigma_y);
  CHECK(worst > 0);
  CHECK(saved.get("x_hat: mask, pigdm").shape() == Shape{plan.images, 1, kSide, kSide});
  std::ifstream json_file(out / "restore.json");
  const nlohmann::json json = nlohmann::json::parse(json_file);
  CHECK(json.at("entries").size() == results.entries.size());
  CHECK(ex::ImageRestorePlan::from_json(json.at("config")).to_json() == plan.to_json());
}
