// dpmlab sample: draws samples from a checkpoint written by `dpmlab train` (or train_dpm). The
// model, its schedule and its output parameterisation come from the checkpoint alone; the sample
// shape and the data's normalisation from the metadata `dpmlab train` adds.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/flag_config.hpp"
#include "autograd/io/safetensors.hpp"
#include "autograd/progress_line.hpp"
#include "datasets/data_files.hpp"
#include "datasets/image_folder.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/sampler.hpp"

namespace dpm::cli {
namespace {

struct SampleArgs {
  CommonArgs common;
  std::string checkpoint, steps = "ancestral";
  int64_t count = 64;
};

// What the checkpoint says about its data: the shape the model takes, the shape of one sample
// in the data's own terms, and the normalisation (absent for checkpoints not made by `train`).
struct DataDescription {
  Shape model_shape, sample_shape;
  std::optional<datasets::Normalization> normalization;
};

DataDescription describe_data(const diffusion::DpmCheckpoint& checkpoint, const std::string& path) {
  const datasets::TrainingData data = datasets::training_data(checkpoint.metadata, path);
  if (data.model_shape && data.sample_shape)
    return {*data.model_shape, *data.sample_shape, data.normalization};
  // A bare train_dpm checkpoint: only a flat-vector network's sample shape follows from the model config.
  const nlohmann::json config = checkpoint.model->config();
  if (!nn::takes_flat_vectors(config))
    throw std::runtime_error(path + ": no '" + datasets::kTrainingDataMetadataKey +
                             "' metadata with the sample shape (not written by `dpmlab train`), "
                             "so the sample shape of this " +
                             config.value("arch", "") + " is unknown");
  const Shape shape{config.at("dim").get<int64_t>()};
  return {shape, shape, data.normalization};
}

void run_sample(const CLI::App* command, SampleArgs& args) {
  FlagConfig config(command, args.common);
  config.text("--checkpoint", args.checkpoint);
  config.integer("--count", args.count);
  config.text("--steps", args.steps);
  config.seed(args.common.seed);
  const nlohmann::json used = config.finish();
  if (args.checkpoint.empty()) throw CLI::ValidationError("--checkpoint", "is required");
  if (args.steps != "ancestral" && args.steps != "ddim")
    throw CLI::ValidationError("--steps", "must be ancestral or ddim, got '" + args.steps + "'");
  start_run(args.common);
  write_used_config(args.common, used);

  const diffusion::DpmCheckpoint checkpoint = diffusion::load_dpm_checkpoint(args.checkpoint);
  const DataDescription data = describe_data(checkpoint, args.checkpoint);
  auto predictor = diffusion::make_predictor(checkpoint);
  const diffusion::Schedule& schedule = checkpoint.schedule;

  Rng rng(args.common.seed);
  Rng noise_rng = rng.split(0), sampler_rng = rng.split(1);
  Tensor x_T = datasets::with_sample_shape(Tensor::empty({args.count, data.model_shape.numel()}),
                                           data.model_shape);
  noise_rng.fill_normal(x_T.data(), x_T.numel());
  // Ancestral sampling with the reverse variance the model was trained for (beta_t unless a
  // vlb/hybrid objective chose beta~_t); DDIM with eta = 0, a deterministic path.
  diffusion::ReverseProcess process;
  process.kind =
      args.steps == "ddim" ? diffusion::ReverseKind::ddim : diffusion::ReverseKind::ancestral;
  process.variance = checkpoint.objective.reverse_variance;
  ProgressLine progress("sample", schedule.T(), "steps", args.common.quiet ? nullptr : stderr);
  const diffusion::DoubleBatch x_0 = diffusion::run_reverse(
      process, *predictor, schedule, diffusion::DoubleBatch::from_tensor(x_T), schedule.T(),
      sampler_rng,
      [&](int64_t t, const diffusion::DoubleBatch&) { progress.update(schedule.T() - t + 1); });
  progress.finish();

  const Tensor samples = datasets::with_sample_shape(x_0.to_tensor(), data.sample_shape);
  const std::filesystem::path out(args.common.out);
  const std::string samples_path = (out / "samples.safetensors").string();
  std::map<std::string, std::string> metadata = {
      {"dpmlab.samples",
       nlohmann::json{{"checkpoint", args.checkpoint},
                      {"sampler", args.steps},
                      {"steps", schedule.T()},
                      {"seed", args.common.seed},
                      {"space",
                       "the model's data space; with a normalisation in dpmlab.data, "
                       "raw = samples * scale + mean"}}
           .dump()}};
  if (auto it = checkpoint.metadata.find(datasets::kTrainingDataMetadataKey);
      it != checkpoint.metadata.end())
    metadata.emplace(it->first, it->second);
  write_safetensors(samples_path, {{"samples", samples}}, metadata);

  double power = 0;
  for (double v : x_0.values) power += v * v;
  power /= static_cast<double>(x_0.values.size());
  std::printf(
      "Drew %lld samples of shape %s from %s: %s sampler, %lld steps from pure noise, %lld "
      "network evaluations, %s. Average power per entry %.4g (data normalised by `dpmlab` "
      "have 1). Wrote %s",
      static_cast<long long>(args.count), data.sample_shape.str().c_str(), args.checkpoint.c_str(),
      args.steps.c_str(), static_cast<long long>(schedule.T()),
      static_cast<long long>(predictor->evaluations()),
      ProgressLine::format_duration(progress.elapsed_seconds()).c_str(), power,
      samples_path.c_str());
  if (datasets::is_image_shape(data.sample_shape)) {
    const Tensor pixels =
        data.normalization ? datasets::denormalize(samples, *data.normalization) : samples;
    const std::string png = (out / "samples.png").string();
    const int columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(args.count))));
    datasets::write_png_grid(png, pixels, columns);
    std::printf(" and %s (%s)", png.c_str(),
                data.normalization ? "mapped back to the data's pixel range" : "clamped to [0, 1]");
  }
  std::printf(".\n");
}

}  // namespace

void register_sample_command(CLI::App& app) {
  auto args = std::make_shared<SampleArgs>();
  CLI::App* sample = app.add_subcommand(
      "sample",
      "Draw samples from a trained model, from pure noise through all T steps: the model, schedule "
      "and parameterisation are rebuilt from the checkpoint alone. Writes samples.safetensors, and "
      "samples.png for image models (mapped back to pixels).\n"
      "Example: dpmlab sample --checkpoint runs/train/best.safetensors --count 16 --steps ddim "
      "--out runs/sample");
  sample
      ->add_option("--checkpoint", args->checkpoint,
                   "a checkpoint of a `dpmlab train` run (its best.safetensors)")
      ->check(CLI::ExistingFile);
  sample->add_option("--count", args->count, "samples to draw")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}))
      ->capture_default_str();
  sample
      ->add_option("--steps", args->steps,
                   "ancestral (DDPM, with noise) or ddim (eta = 0, deterministic)")
      ->check(CLI::IsMember({"ancestral", "ddim"}))
      ->capture_default_str();
  add_common_flags(sample, args->common, "runs/sample");
  sample->callback([sample, args] { run_sample(sample, *args); });
}

}  // namespace dpm::cli
