#include "experiments/image_restore.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <tuple>

#include "autograd/rng.hpp"
#include "datasets/data_files.hpp"
#include "datasets/image_folder.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/error_stats.hpp"
#include "diffusion/inverse/image_quality.hpp"
#include "diffusion/inverse/operators.hpp"
#include "experiments/report/format.hpp"

namespace dpm::experiments {
namespace {

namespace inv = diffusion::inverse;
using Kind = ImageRestoreUnitKind;

// The SSIM window's side: smaller images cannot be scored.
constexpr int64_t kMinImageSide = 11;

// Random streams, each a function of the seed and what it is for: the random mask, each task's
// measurement noise and each solver's draws on a task.
enum Stream : uint64_t { operator_stream, noise_stream, solver_stream };

int64_t super_resolution_factor(RestoreTask task) {
  return task == RestoreTask::sr2 ? 2 : 4;
}

}  // namespace

std::string describe(const ImageRestorePlan& plan, RestoreTask task) {
  switch (task) {
    case RestoreTask::box:
      return "box " + std::to_string(plan.box_size) + "x" + std::to_string(plan.box_size) +
             " missing";
    case RestoreTask::random:
      return "random " + report::number(100 * plan.missing) + "% missing";
    case RestoreTask::sr2:
    case RestoreTask::sr4:
      return "super-resolution x" + std::to_string(super_resolution_factor(task)) +
             " (block average)";
    case RestoreTask::blur:
      return "Gaussian blur sigma " + report::number(plan.blur_sigma) +
             (plan.blur_singular_floor > 0
                  ? ", axis singular values < " + report::number(plan.blur_singular_floor) +
                        " zeroed"
                  : "");
    case RestoreTask::mask:
      return "mask " + plan.mask;
  }
  return "?";
}

std::string ImageRestoreUnit::stage() const {
  const std::string name = choice_name(task);
  if (kind == Kind::measure) return name + ": measurements";
  return name + ": " + choice_name(solver) + " (" + std::to_string(steps) + " steps)";
}

ImageRestorePlan ImageRestorePlan::quick() {
  ImageRestorePlan plan;
  plan.images = 4;
  plan.grid_images = 4;
  plan.red_diff_steps = 10;
  plan.dps_steps = 10;
  plan.pigdm_steps = 10;
  plan.ddrm_steps = 5;
  return plan;
}

void ImageRestorePlan::validate() const {
  if (checkpoint.empty())
    throw PlanError("checkpoint", "is required: a network trained by `dpmlab train` on images");
  if (data.empty()) throw PlanError("data", "is empty: fashion-mnist or an image folder");
  require_range("first_image", first_image, 0, 100'000'000);
  require_range("images", images, 1, 100'000);
  if (tasks.empty()) throw PlanError("tasks", "is empty");
  require_range("box_size", box_size, 1, 100'000);
  require_finite("missing", missing, 0.0, false, 0.99);
  require_finite("blur_sigma", blur_sigma, 0.0, false);
  require_finite("blur_singular_floor", blur_singular_floor, 0.0, true);
  const bool mask_task = std::find(tasks.begin(), tasks.end(), RestoreTask::mask) != tasks.end();
  if (mask_task && mask.empty())
    throw PlanError("mask",
                    "is required by the task 'mask': a PNG of the images' size, black "
                    "where pixels are missing");
  if (!mask_task && !mask.empty())
    throw PlanError("tasks", "does not list 'mask', but a mask PNG is given: add it to the tasks");
  require_finite("sigma_y", sigma_y, 0.0, false);
  require_range("grid_images", grid_images, 0, images);
  validate_solvers();
}

ImageRestorePlan ImageRestorePlan::from_json(const nlohmann::json& json) {
  ImageRestorePlan plan = plan_from_json<ImageRestorePlan>(json);
  plan.validate();
  return plan;
}

std::vector<ImageRestoreUnit> ImageRestorePlan::units(int64_t T) const {
  std::vector<ImageRestoreUnit> units;
  for (RestoreTask task : tasks) {
    units.push_back({Kind::measure, task});
    for (InverseSolver solver : solvers)
      units.push_back({Kind::solve, task, solver, steps(solver, T)});
  }
  return units;
}

namespace {

// What the plan names, read and checked against each other.
struct RestoreInputs {
  diffusion::DpmCheckpoint network;
  Shape model_shape;                      // one sample as the network takes it
  inv::ImageShape image;                  // [C, H, W]
  datasets::Normalization normalization;  // pixels -> the network's units
  std::vector<float> x0;                  // [n, C, H, W] pixels in [0, 1]
  std::vector<uint8_t> mask_observed;     // [C H W] for the task 'mask'
};

Tensor read_images(const ImageRestorePlan& plan, int64_t channels) {
  namespace fs = std::filesystem;
  if (plan.data == "fashion-mnist") {
    try {
      return datasets::load_fashion_mnist(plan.data_dir, "test").images;
    } catch (const std::runtime_error& e) {
      throw PlanError("data_dir", e.what());
    }
  }
  if (!fs::is_directory(plan.data))
    throw PlanError("data", "'" + plan.data + "' is neither fashion-mnist nor an image folder");
  return datasets::load_image_folder(
      plan.data, channels == 1 ? datasets::ColorMode::gray : datasets::ColorMode::rgb);
}

// Observed pixels of the mask PNG (white, >= 0.5), repeated over the channels.
std::vector<uint8_t> read_mask(const ImageRestorePlan& plan, const inv::ImageShape& image) {
  const Tensor mask = datasets::load_image(plan.mask, datasets::ColorMode::gray);
  if (mask.size(1) != image.height || mask.size(2) != image.width)
    throw PlanError("mask", "'" + plan.mask + "' is " + std::to_string(mask.size(2)) + "x" +
                                std::to_string(mask.size(1)) + " pixels; the images are " +
                                std::to_string(image.width) + "x" + std::to_string(image.height));
  const int64_t plane = image.height * image.width;
  std::vector<uint8_t> observed(static_cast<size_t>(image.numel()));
  for (int64_t i = 0; i < image.numel(); ++i) observed[i] = mask.data()[i % plane] >= 0.5f;
  if (std::count(observed.begin(), observed.end(), 1) == 0)
    throw PlanError("mask", "'" + plan.mask + "' is black everywhere: no pixel is observed");
  return observed;
}

// Throws PlanError naming the field of a task the image size cannot hold.
void check_tasks(const ImageRestorePlan& plan, const inv::ImageShape& image) {
  const std::string size = std::to_string(image.width) + "x" + std::to_string(image.height);
  for (RestoreTask task : plan.tasks) {
    if (task == RestoreTask::box && plan.box_size >= std::min(image.height, image.width))
      throw PlanError("box_size", std::to_string(plan.box_size) +
                                      " must be smaller than the sides of the images, " + size);
    if (task == RestoreTask::blur) {
      try {
        inv::make_gaussian_blur(image, plan.blur_sigma, plan.blur_singular_floor);
      } catch (const std::invalid_argument& e) {
        throw PlanError("blur_singular_floor", e.what());
      }
    }
    if (task != RestoreTask::sr2 && task != RestoreTask::sr4) continue;
    const int64_t factor = super_resolution_factor(task);
    if (image.height % factor != 0 || image.width % factor != 0)
      throw PlanError("tasks", std::string(choice_name(task)) + " needs sides divisible by " +
                                   std::to_string(factor) + "; the images are " + size);
  }
}

RestoreInputs read_inputs(const ImageRestorePlan& plan) {
  if (!std::filesystem::exists(plan.checkpoint))
    throw PlanError("checkpoint", "'" + plan.checkpoint + "' does not exist");
  RestoreInputs in{diffusion::load_dpm_checkpoint(plan.checkpoint), {}, {}, {}, {}, {}};
  const datasets::TrainingData trained_on =
      datasets::training_data(in.network.metadata, plan.checkpoint);
  const int64_t channels = in.network.model->config().value("data_channels", int64_t{1});
  const Tensor images = read_images(plan, channels);
  if (images.ndim() != 4)
    throw PlanError("data", "holds samples of shape " + images.shape().str() + ", not images");
  const int64_t available = images.size(0);
  if (plan.first_image + plan.images > available)
    throw PlanError("images", std::to_string(plan.first_image) + " + " +
                                  std::to_string(plan.images) + " images exceed the " +
                                  std::to_string(available) + " of " + plan.data);
  in.image = {images.size(1), images.size(2), images.size(3)};
  const Shape image_shape{in.image.channels, in.image.height, in.image.width};
  if (std::min(in.image.height, in.image.width) < kMinImageSide)
    throw PlanError("data", "images of " + image_shape.str() + " are smaller than SSIM's " +
                                std::to_string(kMinImageSide) + "x" +
                                std::to_string(kMinImageSide) + " window");
  in.model_shape = trained_on.model_shape.value_or(image_shape);
  if (in.model_shape.numel() != in.image.numel())
    throw PlanError("checkpoint", "the network takes samples of shape " + in.model_shape.str() +
                                      "; the images of " + plan.data + " are " + image_shape.str());
  in.normalization = trained_on.normalization.value_or(
      datasets::Normalization{std::vector<double>(in.image.numel(), 0.0), 1.0});
  if (static_cast<int64_t>(in.normalization.mean.size()) != in.image.numel())
    throw PlanError("checkpoint", "its recorded normalisation has " +
                                      std::to_string(in.normalization.mean.size()) +
                                      " values per sample; the images have " +
                                      std::to_string(in.image.numel()));
  const Tensor chosen = images.contiguous();
  const float* first = chosen.data() + plan.first_image * in.image.numel();
  in.x0.assign(first, first + plan.images * in.image.numel());
  check_tasks(plan, in.image);
  if (!plan.mask.empty()) in.mask_observed = read_mask(plan, in.image);
  plan.require_steps_within(in.network.schedule.T());
  return in;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The mean over the images and its standard error, as every dpmlab report computes them.
std::pair<double, double> mean_and_se(const std::vector<double>& values) {
  return diffusion::ratio_with_se(values, std::vector<double>(values.size(), 1.0));
}

// One task: its operator on pixels (the same A acts on the network's units) and y in pixels.
struct MeasuredTask {
  std::shared_ptr<inv::MeasurementOperator> op;
  std::vector<double> y;
};

class Restorer {
 public:
  Restorer(const ImageRestorePlan& plan, const RestoreInputs& in, ImageRestoreResults& results)
      : plan_(plan), in_(in), results_(results), network_(diffusion::make_predictor(in.network)) {}

  // One unit's entry and its restored images (clamped pixels).
  struct Restoration {
    ImageRestoreEntry entry;
    std::vector<float> pixels;
  };
  // A measure unit: the task's measurements, kept for its solvers, and the measurement's entry.
  Restoration measure(RestoreTask task);
  // A solve unit (its task measured first), and its entry.
  SolverRun solve(const ImageRestoreUnit& unit);
  Restoration solved(const ImageRestoreUnit& unit, const SolverRun& run) const;

 private:
  int64_t task_index(RestoreTask task) const {
    return std::find(plan_.tasks.begin(), plan_.tasks.end(), task) - plan_.tasks.begin();
  }
  std::shared_ptr<inv::MeasurementOperator> make_operator(RestoreTask task) const;
  // Clamps the pixels to [0, 1] and scores them.
  Restoration scored(ImageRestoreEntry entry, const std::vector<double>& pixels) const;

  const ImageRestorePlan& plan_;
  const RestoreInputs& in_;
  ImageRestoreResults& results_;
  std::shared_ptr<diffusion::NetworkPredictor> network_;
  std::vector<MeasuredTask> measured_ = std::vector<MeasuredTask>(plan_.tasks.size());
};

std::shared_ptr<inv::MeasurementOperator> Restorer::make_operator(RestoreTask task) const {
  const inv::ImageShape& image = in_.image;
  switch (task) {
    case RestoreTask::box:
      return std::make_shared<inv::MaskOperator>(
          inv::MaskOperator::centred_box(image, plan_.box_size, plan_.box_size));
    case RestoreTask::random:
      return std::make_shared<inv::MaskOperator>(inv::MaskOperator::random(
          image.numel(), plan_.missing, Rng(plan_.seed, operator_stream).next_u64()));
    case RestoreTask::sr2:
    case RestoreTask::sr4:
      return std::make_shared<inv::SeparableImageOperator>(
          inv::make_super_resolution(image, super_resolution_factor(task)));
    case RestoreTask::blur:
      return std::make_shared<inv::SeparableImageOperator>(
          inv::make_gaussian_blur(image, plan_.blur_sigma, plan_.blur_singular_floor));
    case RestoreTask::mask:
      return std::make_shared<inv::MaskOperator>("mask", in_.mask_observed);
  }
  throw std::logic_error("image_restore: unknown task");
}

Restorer::Restoration Restorer::measure(RestoreTask task) {
  const auto start = std::chrono::steady_clock::now();
  MeasuredTask& m = measured_[task_index(task)];
  m.op = make_operator(task);
  inv::ScopedBatch batch(*m.op, plan_.images);
  m.y = m.op->apply(std::vector<double>(in_.x0.begin(), in_.x0.end()));
  Rng noise = Rng(plan_.seed, noise_stream).split(task_index(task));
  for (double& v : m.y) v += plan_.sigma_y * noise.normal();

  RestoreMeasurements record{task, m.op->output_dim(), {m.y.begin(), m.y.end()}};
  if (auto* mask = dynamic_cast<inv::MaskOperator*>(m.op.get())) {
    record.observed.assign(static_cast<size_t>(in_.image.numel()), 0.0f);
    for (int64_t i : mask->observed_indices()) record.observed[i] = 1.0f;
  } else if (auto* separable = dynamic_cast<inv::SeparableImageOperator*>(m.op.get())) {
    record.row_map.assign(separable->row_map().begin(), separable->row_map().end());
    record.col_map.assign(separable->col_map().begin(), separable->col_map().end());
    record.out_height = separable->output_shape().height;
    record.out_width = separable->output_shape().width;
  }
  results_.measurements.push_back(std::move(record));
  ImageRestoreEntry entry;
  entry.task = task;
  entry.method = "measurement";
  entry.seconds = seconds_since(start);
  return scored(entry, task == RestoreTask::blur ? m.y : m.op->pseudo_inverse(m.y));
}

SolverRun Restorer::solve(const ImageRestoreUnit& unit) {
  const MeasuredTask& m = measured_[task_index(unit.task)];
  const datasets::Normalization& norm = in_.normalization;
  // In the network's units x' = (x - mean) / scale: y' = (y - A mean) / scale = A x' + n',
  // with n' of standard deviation sigma_y / scale.
  std::vector<double> shifted_mean;
  {
    inv::ScopedBatch one(*m.op, 1);
    shifted_mean = m.op->apply(norm.mean);
  }
  const int64_t rows = m.op->output_dim();
  inv::Problem problem{m.y, plan_.sigma_y / norm.scale, in_.model_shape};
  for (size_t i = 0; i < problem.y.size(); ++i)
    problem.y[i] = (problem.y[i] - shifted_mean[i % rows]) / norm.scale;

  Rng rng = Rng(plan_.seed, solver_stream)
                .split(task_index(unit.task))
                .split(static_cast<uint64_t>(unit.solver));
  const auto start = std::chrono::steady_clock::now();
  const inv::Restored restored = plan_.solve(unit.solver, unit.steps, std::nullopt, *m.op, problem,
                                             inv::network_prior(*network_), rng);
  return SolverRun::of(restored, seconds_since(start));
}

Restorer::Restoration Restorer::solved(const ImageRestoreUnit& unit, const SolverRun& run) const {
  ImageRestoreEntry entry;
  entry.task = unit.task;
  entry.method = choice_name(unit.solver);
  entry.steps = unit.steps;
  entry.evaluations = run.evaluations;
  entry.backward_passes = run.backward_passes;
  entry.seconds = run.seconds;
  const datasets::Normalization& norm = in_.normalization;
  std::vector<double> pixels = run.x_hat;
  const size_t dim = norm.mean.size();
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = pixels[i] * norm.scale + norm.mean[i % dim];
  return scored(entry, pixels);
}

Restorer::Restoration Restorer::scored(ImageRestoreEntry entry,
                                       const std::vector<double>& pixels) const {
  entry.finite =
      std::all_of(pixels.begin(), pixels.end(), [](double v) { return std::isfinite(v); });
  // A diverged solver's non-finite pixels are kept as black, so its grid column still draws.
  std::vector<float> clamped(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i)
    clamped[i] =
        std::isfinite(pixels[i]) ? static_cast<float>(std::clamp(pixels[i], 0.0, 1.0)) : 0.0f;
  if (entry.finite) {
    const inv::ImageShape& s = in_.image;
    constexpr double kPixelRange = 1.0;  // images in [0, 1]
    std::tie(entry.psnr, entry.psnr_se) = mean_and_se(inv::psnr_per_image(
        clamped.data(), in_.x0.data(), plan_.images, s.channels, s.height, s.width, kPixelRange));
    std::tie(entry.ssim, entry.ssim_se) = mean_and_se(inv::ssim_per_image(
        clamped.data(), in_.x0.data(), plan_.images, s.channels, s.height, s.width, kPixelRange));
  }
  return {std::move(entry), std::move(clamped)};
}

}  // namespace

ImageRestoreResults run(const ImageRestorePlan& plan, report::Progress& progress,
                        dist::Communicator& ranks) {
  const auto start = std::chrono::steady_clock::now();
  plan.validate();
  const RestoreInputs in = read_inputs(plan);
  ImageRestoreResults results;
  results.plan = plan;
  results.T = in.network.schedule.T();
  results.image_shape = {in.image.channels, in.image.height, in.image.width};
  results.x0 = in.x0;
  Restorer restorer(plan, in, results);
  const std::vector<ImageRestoreUnit> units = plan.units(results.T);
  std::vector<Restorer::Restoration> by_unit = run_inverse_units(
      units, ranks, progress,
      [&](const ImageRestoreUnit& unit) { return restorer.measure(unit.task); },
      [&](const ImageRestoreUnit& unit) { return restorer.solve(unit); },
      [&](const ImageRestoreUnit& unit, const SolverRun& run) {
        return restorer.solved(unit, run);
      });
  for (Restorer::Restoration& r : by_unit) {
    results.entries.push_back(std::move(r.entry));
    results.restored.push_back(std::move(r.pixels));
  }
  results.seconds = seconds_since(start);
  return results;
}

}  // namespace dpm::experiments
