#pragma once
// Image restoration with a trained DM prior as an experiment (docs/inverse.md, "Restoring
// images"): RED-Diff, DPS, PiGDM and DDRM with a network trained by `dpmlab train` on images
// (e.g. the 2-D U-Net on Fashion-MNIST), on test images of the same kind, y = A x0 + sigma_y n in
// pixel units. Tasks: a centred box missing, random pixels missing, 2x and 4x super-resolution by
// block averaging, Gaussian blur and, given a PNG, the user's own mask. Each solver is scored by
// PSNR and SSIM per image against the truth, beside the measurement itself seen as an image.
// Images have no closed-form posterior mean: the exact comparison is inverse_bench.hpp's.
//
//   ImageRestorePlan plan;  plan.checkpoint = "runs/fmnist/best.safetensors";  plan.validate();
//   const ImageRestoreResults results = run(plan, progress);
//   report::write(results, "runs/restore");  // experiments/image_restore_report.hpp
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/idx.hpp"
#include "distributed/communicator.hpp"
#include "experiments/inverse_solvers.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"

namespace dpm::experiments {

enum class RestoreTask { box, random, sr2, sr4, blur, mask };

}  // namespace dpm::experiments

template <>
struct dpm::experiments::Choices<dpm::experiments::RestoreTask> {
  static constexpr std::array<std::pair<RestoreTask, const char*>, 6> values{
      {{RestoreTask::box, "box"},
       {RestoreTask::random, "random"},
       {RestoreTask::sr2, "sr2"},
       {RestoreTask::sr4, "sr4"},
       {RestoreTask::blur, "blur"},
       {RestoreTask::mask, "mask"}}};
};

namespace dpm::experiments {

enum class ImageRestoreUnitKind {
  measure,  // one task's operator and measurements, and the measurement scored as an image
  solve,    // one solver on one task
};

struct ImageRestoreUnit {
  ImageRestoreUnitKind kind = ImageRestoreUnitKind::measure;
  RestoreTask task = RestoreTask::box;
  InverseSolver solver = InverseSolver::red_diff;  // solve only
  int64_t steps = 0;                               // solve only: the solver's grid steps

  std::string stage() const;  // "sr4: ddrm (20 steps)"
};

struct ImageRestorePlan : InverseSolverPlan {
  std::string checkpoint;              // a network trained by `dpmlab train` on images (required)
  std::string data = "fashion-mnist";  // "fashion-mnist" (its test split) or an image folder
  std::string data_dir = datasets::kDefaultFashionMnistDir;  // where fashion-mnist is
  int64_t first_image = 0;  // the images restored: [first_image, first_image + images)
  int64_t images = 16;
  std::vector<RestoreTask> tasks{RestoreTask::box, RestoreTask::random, RestoreTask::sr2,
                                 RestoreTask::sr4, RestoreTask::blur};
  int64_t box_size = 14;    // box: the side of the missing square, in pixels
  double missing = 0.5;     // random: the fraction of pixels missing
  double blur_sigma = 1.5;  // blur: the Gaussian's sigma, in pixels (9 taps)
  // blur: each axis's singular values below this are zeroed, as the authors' code does (0: the
  // exact blur, whose pseudo-inverse amplifies the noise by ~1e10 on 28 x 28 images)
  double blur_singular_floor = 3e-2;
  std::string mask;         // mask: a PNG of the image's size, black = missing
  double sigma_y = 0.05;    // the measurement noise, in pixel units ([0, 1] images)
  int64_t grid_images = 8;  // images shown in each task's PNG grid
  uint64_t seed = 0;

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("checkpoint", plan.checkpoint);
    visit("data", plan.data);
    visit("data_dir", plan.data_dir);
    visit("first_image", plan.first_image);
    visit("images", plan.images);
    visit("tasks", plan.tasks);
    visit("box_size", plan.box_size);
    visit("missing", plan.missing);
    visit("blur_sigma", plan.blur_sigma);
    visit("blur_singular_floor", plan.blur_singular_floor);
    visit("mask", plan.mask);
    visit("sigma_y", plan.sigma_y);
    visit("grid_images", plan.grid_images);
    solver_fields(plan, visit);
    visit("seed", plan.seed);
  }

  // A small size for a first look and the tests: 4 images, every task, each solver on at most
  // 10 steps (so it fits any T >= 10).
  static ImageRestorePlan quick();
  void validate() const;  // throws PlanError naming the field
  nlohmann::json to_json() const { return plan_to_json(*this); }
  static ImageRestorePlan from_json(const nlohmann::json& json);  // validated

  // Each task's measurement before its solvers, task by task. T is the network's (read_inputs).
  std::vector<ImageRestoreUnit> units(int64_t T) const;
};

// One task's setting in words: "box 14x14 missing", "sr4 (block average)", "blur sigma 1.5".
std::string describe(const ImageRestorePlan& plan, RestoreTask task);

struct ImageRestoreEntry {
  RestoreTask task = RestoreTask::box;
  std::string method;  // a solver's name, or "measurement"
  int64_t steps = 0;   // the solver's grid steps (0 for the measurement)
  bool finite = true;  // false: the solver diverged (some value is not finite); no scores then
  double psnr = 0, psnr_se = 0, ssim = 0, ssim_se = 0;  // over the images, with standard errors
  int64_t evaluations = 0;                              // batched network evaluations (NFE)
  int64_t backward_passes = 0;                          // batched J_eps^T products
  double seconds = 0;
};

// One task's measurements [n, m] (pixel units) and its operator: for masks the observed pixels,
// for super-resolution and blur the per-axis maps, Y = L X R^T in every channel.
struct RestoreMeasurements {
  RestoreTask task = RestoreTask::box;
  int64_t rows = 0;             // m
  std::vector<float> y = {};         // [n, m]
  std::vector<float> observed = {};  // masks: [C, H, W], 1 observed, 0 missing; empty otherwise
  std::vector<float> row_map = {};   // otherwise: L [H', H]
  std::vector<float> col_map = {};   // and R [W', W]
  int64_t out_height = 0, out_width = 0;  // H', W'
};

struct ImageRestoreResults {
  ImageRestorePlan plan;                          // as given
  int64_t T = 0;                                  // the network's
  std::vector<int64_t> image_shape;               // [C, H, W]
  std::vector<float> x0;                          // the clean images [n, C, H, W], pixels
  std::vector<RestoreMeasurements> measurements;  // per task, in plan order
  std::vector<ImageRestoreEntry> entries;         // in units() order
  // Per entry, [n, C, H, W] pixels clamped to [0, 1] as scored (non-finite ones, of a diverged
  // solver, as 0): the solver's restoration, or the
  // measurement as an image (A^+ y: zeros where a mask hides pixels, blocks for super-resolution;
  // y itself for blur, whose pseudo-inverse amplifies the noise without bound).
  std::vector<std::vector<float>> restored;
  double seconds = 0;
};

// Executes plan.units(), one progress unit each, over `ranks`: every measurement first, then the
// solvers (under mpirun each solver unit on one rank; run_inverse_units). Collective. Throws
// PlanError naming the field when the files do not fit the plan (a network not trained on images
// of this size, a mask of another size, a task the image size cannot hold).
ImageRestoreResults run(const ImageRestorePlan& plan, report::Progress& progress,
                        dist::Communicator& ranks = dist::Communicator::world());

}  // namespace dpm::experiments
