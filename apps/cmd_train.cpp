// dpmlab train: trains a diffusion model through train::train_dpm on a data set directory (gmm
// make / fit), Fashion-MNIST or an image folder. The config file is a DpmTrainingConfig JSON (e.g.
// a run's config.used.json); the flags override it. Images are normalised like the GMM data
// (training mean, unit average power per entry) and the map is stored in the checkpoints, so
// `dpmlab sample` can undo it.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/diffusion_flags.hpp"
#include "apps/flag_config.hpp"
#include "autograd/progress_line.hpp"
#include "datasets/data_files.hpp"
#include "datasets/data_loader.hpp"
#include "datasets/gmm.hpp"
#include "datasets/idx.hpp"
#include "datasets/image_folder.hpp"
#include "diffusion/oracle.hpp"
#include "distributed/communicator.hpp"
#include "experiments/training_report.hpp"
#include "nn/lipschitz/spectral_scan.hpp"
#include "nn/noise_model.hpp"
#include "trainers/dpm_training.hpp"
#include "trainers/jacobian_tracker.hpp"
#include "trainers/spectral_tracker.hpp"

namespace dpm::cli {
namespace {

struct TrainArgs {
  CommonArgs common;
  std::string data, data_dir = datasets::kDefaultFashionMnistDir, color = "rgb";
  int64_t max_samples = 0;
  DiffusionFlags diffusion;
  std::string arch, loss, resume;
  bool sync_batchnorm = false;
  int64_t batch = 0, epochs = 0, max_steps = 0, track_spectral = 0, track_jacobian = 0;
  double lr = 0, max_minutes = 0, ema = 0;
};

struct TrainData {
  Tensor train, val;        // [n, ...model shape]; val undefined when there is none
  nlohmann::json describe;  // datasets::kTrainingDataMetadataKey: source, shapes, normalisation
};

Tensor first_rows(const Tensor& x, int64_t max_rows) {
  return max_rows > 0 && x.size(0) > max_rows ? x.narrow(0, 0, max_rows) : x;
}

// Normalises raw data (images) with a map fitted on train (docs/protocol.md, The GMM protocol).
datasets::Normalization normalize_in_place(Tensor& train, Tensor& val) {
  const Shape train_shape = train.shape();
  datasets::Normalization normalization =
      datasets::Normalization::fit(datasets::flatten_rows(train));
  train = normalization.apply(datasets::flatten_rows(train)).reshape(train_shape);
  if (val.defined()) {
    const Shape val_shape = val.shape();
    val = normalization.apply(datasets::flatten_rows(val)).reshape(val_shape);
  }
  return normalization;
}

// The per-sample shape the architecture takes, for data whose samples have `sample_shape`.
Shape model_shape_for(const std::string& arch, const Shape& sample_shape) {
  const std::vector<int64_t> s = sample_shape.vec();
  if (arch == "unet1d") {
    if (s.size() == 1) return Shape{1, s[0]};  // vectors of length N become [1, N]
    if (s.size() == 3) return Shape{s[0], s[1] * s[2]};
    return sample_shape;
  }
  if (arch == "unet2d" && s.size() != 3)
    throw CLI::ValidationError(
        "--arch",
        "unet2d needs image data [C, H, W]; the samples have shape " + sample_shape.str());
  return sample_shape;
}

TrainData load_train_data(const TrainArgs& args, uint64_t seed) {
  namespace fs = std::filesystem;
  TrainData data;
  datasets::Normalization normalization;
  if (args.data == "fashion-mnist") {
    data.train =
        first_rows(datasets::load_fashion_mnist(args.data_dir, "train").images, args.max_samples);
    data.val =
        first_rows(datasets::load_fashion_mnist(args.data_dir, "test").images, args.max_samples);
    normalization = normalize_in_place(data.train, data.val);
  } else if (fs::is_directory(args.data) &&
             fs::exists(fs::path(args.data) / datasets::kDataFileName)) {
    datasets::GmmDataset set = datasets::read_gmm_dataset(args.data);
    data.train =
        datasets::with_sample_shape(first_rows(set.train, args.max_samples), set.sample_shape);
    data.val = datasets::with_sample_shape(first_rows(set.val, args.max_samples), set.sample_shape);
    normalization = set.normalization;
  } else if (fs::is_directory(args.data)) {
    Tensor images = first_rows(
        datasets::load_image_folder(
            args.data, args.color == "gray" ? datasets::ColorMode::gray : datasets::ColorMode::rgb),
        args.max_samples);
    const int64_t n = images.size(0);
    const int64_t n_val = n >= 2 ? std::max<int64_t>(1, n / 10) : 0;
    Rng split_rng = Rng(seed).split(2);
    std::vector<Tensor> parts = datasets::split_by_counts(images, {n - n_val, n_val}, split_rng);
    data.train = parts[0];
    if (n_val > 0) data.val = parts[1];
    normalization = normalize_in_place(data.train, data.val);
  } else {
    throw CLI::ValidationError("--data", "'" + args.data +
                                             "' is neither fashion-mnist, a data set directory "
                                             "(with data.safetensors) nor an image folder");
  }
  std::vector<int64_t> sample_dims = data.train.shape().vec();
  sample_dims.erase(sample_dims.begin());
  data.describe = {{"source", args.data},
                   {"sample_shape", sample_dims},
                   {"normalization", datasets::normalization_to_json(normalization)}};
  return data;
}

// The run's config: the --config file (a DpmTrainingConfig JSON) or the defaults, flags over it.
train::DpmTrainingConfig build_config(const CLI::App* command, const TrainArgs& args) {
  const nlohmann::json file = read_config_file(args.common);
  train::DpmTrainingConfig config = as_usage_error("--config", [&] {
    try {
      return train::DpmTrainingConfig::from_json(file);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(args.common.config_file + ": " + e.what());
    }
  });
  auto given = [&](const char* flag) { return flag_given(command, flag); };
  if (given("--arch")) config.model = {{"arch", args.arch}};
  apply_diffusion_flags(command, args.diffusion, config);
  as_usage_error(given("--schedule") ? "--schedule" : "--T",
                 [&] { return diffusion::Schedule::from_json(config.schedule); });
  if (given("--loss")) config.objective.loss = diffusion::parse_loss_kind(args.loss);
  as_usage_error("--loss", [&] {
    config.objective.validate();
    return 0;
  });
  if (given("--lr")) config.optimizer.lr = args.lr;
  if (given("--batch")) config.trainer.batch_size = args.batch;
  if (given("--epochs")) config.trainer.max_epochs = args.epochs;
  if (given("--max-steps")) config.trainer.max_steps = args.max_steps;
  if (given("--max-minutes")) config.trainer.max_seconds = 60 * args.max_minutes;
  if (given("--ema")) config.trainer.ema_decay = args.ema;
  if (given("--seed")) config.trainer.seed = config.init_seed = args.common.seed;
  if (given("--resume")) config.resume_from = args.resume;
  if (args.sync_batchnorm) config.trainer.sync_batchnorm = true;
  if (args.common.quiet) config.trainer.progress = false;
  // A reused config.used.json names its run's directory; --out (or the default) otherwise.
  if (given("--out") || config.trainer.out_dir.empty()) config.trainer.out_dir = args.common.out;
  return config;
}

// Single-quotes a shell word unless it is plain.
std::string shell_word(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789_./:=-") == std::string::npos)
    return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The command that continues this run from its resume file.
std::string resume_command(const CLI::App* command, const TrainArgs& args, const std::string& out) {
  std::string line = "dpmlab train --data " + shell_word(args.data);
  if (flag_given(command, "--data-dir")) line += " --data-dir " + shell_word(args.data_dir);
  if (args.max_samples > 0) line += " --max-samples " + std::to_string(args.max_samples);
  if (flag_given(command, "--color")) line += " --color " + args.color;
  const std::filesystem::path dir(out);
  return line + " --config " + shell_word((dir / "config.used.json").string()) + " --resume " +
         shell_word((dir / "resume.safetensors").string()) + " --out " + shell_word(out);
}

// The trackers the flags ask for. The Jacobian tracker's probe points come from the validation
// samples (else the training ones), and its exact values from the data directory's GMM, if any.
std::function<std::vector<std::shared_ptr<train::Callback>>(const std::shared_ptr<nn::NoiseModel>&,
                                                            const diffusion::Objective&)>
tracker_callbacks(const TrainArgs& args, const train::DpmTrainingConfig& config,
                  const TrainData& data) {
  namespace fs = std::filesystem;
  std::optional<train::SpectralTrackerOptions> spectral;
  if (args.track_spectral > 0) {
    spectral.emplace();
    spectral->every = args.track_spectral;
    const int64_t T = config.schedule.value("T", int64_t{300});
    spectral->scan.time_grid =
        lipschitz::uniform_time_grid(T, static_cast<int>(std::min<int64_t>(16, T)));
    spectral->seed = config.trainer.seed;
  }
  std::optional<train::JacobianTrackerOptions> jacobian;
  std::shared_ptr<datasets::Gmm> gmm;
  if (args.track_jacobian > 0) {
    if (args.track_jacobian % config.trainer.log_every != 0)
      throw CLI::ValidationError("--track-jacobian",
                                 std::to_string(args.track_jacobian) +
                                     " is not a multiple of the metrics interval log_every = " +
                                     std::to_string(config.trainer.log_every) +
                                     " (a scan is logged on a metrics line)");
    jacobian.emplace();
    jacobian->every = args.track_jacobian;
    jacobian->seed = config.trainer.seed;
    const fs::path gmm_file = fs::path(args.data) / datasets::kGmmFileName;
    if (fs::is_directory(args.data) && fs::exists(gmm_file))
      gmm = std::make_shared<datasets::Gmm>(datasets::load_gmm(gmm_file.string()));
  }
  const Tensor clean = data.val.defined() ? data.val : data.train;
  return [spectral, jacobian, gmm, clean](const std::shared_ptr<nn::NoiseModel>& model,
                                          const diffusion::Objective& objective) {
    std::vector<std::shared_ptr<train::Callback>> callbacks;
    if (spectral) callbacks.push_back(std::make_shared<train::SpectralTracker>(*model, *spectral));
    if (jacobian) {
      std::optional<diffusion::GmmOracle> oracle;
      if (gmm) oracle.emplace(*gmm, objective.schedule());
      callbacks.push_back(std::make_shared<train::JacobianTracker>(
          model, objective.schedule(), objective.options().target, clean, *jacobian,
          oracle ? &*oracle : nullptr));
    }
    return callbacks;
  };
}

void run_train(const CLI::App* command, TrainArgs& args) {
  train::DpmTrainingConfig config = build_config(command, args);
  args.common.out = config.trainer.out_dir;
  TrainData data = load_train_data(args, config.trainer.seed);
  std::vector<int64_t> sample_dims = data.describe["sample_shape"].get<std::vector<int64_t>>();
  const Shape model_shape = model_shape_for(config.model.value("arch", ""), Shape(sample_dims));
  train::fit_model_to_data(config, model_shape);
  // A bad model config is a usage error, found before any data is touched by the trainer.
  as_usage_error(flag_given(command, "--arch") ? "--arch" : "--config", [&] {
    Rng rng(0);
    return nn::make_noise_model(config.model, rng);
  });
  data.train = datasets::with_sample_shape(data.train, model_shape);
  if (data.val.defined()) data.val = datasets::with_sample_shape(data.val, model_shape);
  data.describe["model_shape"] = model_shape.vec();
  if (config.trainer.batch_size > data.train.size(0))
    throw CLI::ValidationError("--batch",
                               "batch size " + std::to_string(config.trainer.batch_size) +
                                   " is larger than the " + std::to_string(data.train.size(0)) +
                                   " training samples");
  start_run(args.common);

  train::DpmTrainingExtras extras;
  extras.checkpoint_metadata = {{datasets::kTrainingDataMetadataKey, data.describe.dump()}};
  extras.model_callbacks = tracker_callbacks(args, config, data);
  const dist::Communicator& world = dist::Communicator::world();
  if (world.is_root()) {
    std::printf(
        "dpmlab train: %s on %lld training and %lld validation samples of shape %s from %s; "
        "schedule %s; objective %s; writing into %s\n",
        config.model.dump().c_str(), static_cast<long long>(data.train.size(0)),
        static_cast<long long>(data.val.defined() ? data.val.size(0) : 0),
        Shape(sample_dims).str().c_str(), args.data.c_str(), config.schedule.dump().c_str(),
        config.objective.to_json().dump().c_str(), args.common.out.c_str());
    if (world.distributed())
      std::printf(
          "Data-parallel on %d ranks (MPI): each computes a share of every batch of %lld; "
          "BatchNorm statistics %s.\n",
          world.size(), static_cast<long long>(config.trainer.batch_size),
          config.trainer.sync_batchnorm ? "synchronised over the ranks" : "per rank");
    std::fflush(stdout);
  }

  train::DpmTrainingOutput output = train::train_dpm(config, data.train, data.val, {}, extras);
  const train::TrainResult& r = output.result;
  const std::filesystem::path out(args.common.out);
  if (r.reason == train::StopReason::non_finite)
    throw std::runtime_error("training stopped: " + r.message + " (try a lower --lr; metrics in " +
                             (out / "metrics.jsonl").string() + ")");
  if (!world.is_root()) return;  // rank 0 reports and writes
  std::printf("Stopped (%s): %s.\n", train::stop_reason_name(r.reason), r.message.c_str());
  if (r.best_val_loss)
    std::printf("Best validation loss %.6g at epoch %lld; ", *r.best_val_loss,
                static_cast<long long>(r.best_epoch));
  std::printf("%lld steps, %lld epochs in %s; model with %lld parameters.\n",
              static_cast<long long>(r.steps), static_cast<long long>(r.epochs),
              ProgressLine::format_duration(r.seconds).c_str(),
              static_cast<long long>(output.model->parameter_count()));
  std::printf("Wrote %s (the best model), %s, %s and %s.\n", (out / "best.safetensors").c_str(),
              (out / "resume.safetensors").c_str(), (out / "metrics.jsonl").c_str(),
              (out / "config.used.json").c_str());
  if (std::filesystem::exists(out / "metrics.jsonl")) {
    const experiments::report::Written report = experiments::report::write(
        experiments::read_training_metrics(out / "metrics.jsonl"), out / "report");
    std::printf(
        "Wrote the training report %s (%zu plots; `dpmlab training-report %s` renders it "
        "again, also mid-run).\n",
        (out / "report" / "training.md").c_str(), report.plots.size(),
        shell_word(args.common.out).c_str());
  }
  if (r.reason == train::StopReason::interrupted)
    std::printf("Interrupted: the state is saved. Resume with:\n  %s\n",
                resume_command(command, args, args.common.out).c_str());
}

}  // namespace

void register_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* train = app.add_subcommand(
      "train",
      "Train a diffusion model (train_dpm): the model, schedule, objective and trainer from "
      "--config (a DpmTrainingConfig JSON such as a run's config.used.json) with the flags over "
      "it. Writes config.used.json, best.safetensors, resume.safetensors and metrics.jsonl into "
      "--out. Ctrl-C saves the state and prints how to resume.\n"
      "Example: dpmlab train --data runs/gmm --arch mlp --T 20 --batch 64 --epochs 3 "
      "--out runs/train");
  train
      ->add_option("--data", args->data,
                   "a data set directory (gmm make / gmm fit --sample: train and val), "
                   "fashion-mnist (60k train, the 10k test split for validation) or an image "
                   "folder (10% held out for validation)")
      ->required();
  train->add_option("--data-dir", args->data_dir, "Fashion-MNIST folder")->capture_default_str();
  train->add_option("--color", args->color, "image folders: load as gray or rgb")
      ->check(CLI::IsMember({"gray", "rgb"}))
      ->capture_default_str();
  train
      ->add_option("--max-samples", args->max_samples,
                   "use at most N training and N validation samples (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}))
      ->capture_default_str();
  train->add_option("--arch", args->arch, "architecture (default: the config's, else mlp)")
      ->check(CLI::IsMember({"mlp", "unet1d", "unet2d"}));
  add_diffusion_flags(train, args->diffusion);
  train->add_option("--loss", args->loss, "training loss")
      ->check(CLI::IsMember({"simple", "vlb", "hybrid"}));
  train->add_option("--lr", args->lr, "learning rate (Adam)")->check(CLI::Range(1e-12, 10.0));
  train->add_option("--batch", args->batch, "batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}));
  train->add_option("--epochs", args->epochs, "maximum epochs")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}));
  train->add_option("--max-steps", args->max_steps, "maximum optimizer steps in all")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
  train->add_option("--max-minutes", args->max_minutes, "wall-clock budget in minutes")
      ->check(CLI::Range(1e-6, 1e7));
  train->add_option("--ema", args->ema, "EMA decay of the weights (0: off)")
      ->check(CLI::Range(0.0, 0.999999999));
  train
      ->add_option("--track-spectral", args->track_spectral,
                   "scan every layer's spectral norm every K steps into metrics.jsonl (0: off)")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000}));
  train
      ->add_option("--track-jacobian", args->track_jacobian,
                   "measure the empirical Lipschitz constants of mu_theta(., t) and "
                   "eps_theta(., t) at the steps of -10, 0, 10 and 20 dB every K steps into "
                   "metrics.jsonl (a multiple of the metrics interval; 0: off)")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000}));
  train->add_flag("--sync-batchnorm", args->sync_batchnorm,
                  "data-parallel (mpirun): BatchNorm statistics over the whole global batch "
                  "instead of each rank's share");
  train->add_option("--resume", args->resume, "continue from a resume.safetensors")
      ->check(CLI::ExistingFile);
  add_common_flags(train, args->common, "runs/train");
  train->callback([train, args] { run_train(train, *args); });
}

}  // namespace dpm::cli
