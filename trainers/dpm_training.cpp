#include "trainers/dpm_training.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>

#include "autograd/io/safetensors.hpp"
#include "diffusion/checkpoint.hpp"
#include "distributed/communicator.hpp"
#include "nn/checkpoint.hpp"
#include "nn/config_reader.hpp"
#include "nn/mlp.hpp"
#include "nn/optim/adam.hpp"

namespace dpm::train {
namespace {

constexpr const char* kContext = "dpm training config";

// Runs fn, prefixing any std::invalid_argument it throws with `context`.
template <typename F>
auto with_context(const std::string& context, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(context + ": " + e.what());
  }
}

const char* optimizer_kind_name(OptimizerKind kind) {
  return kind == OptimizerKind::adamw ? "adamw" : "adam";
}

OptimizerConfig read_optimizer(const nlohmann::json& section) {
  const std::string context = std::string(kContext) + ".optimizer";
  nn::ConfigReader reader(section, context);
  OptimizerConfig o;
  o.kind = reader.choice("kind", optimizer_kind_name(o.kind), {"adam", "adamw"}) == "adamw"
               ? OptimizerKind::adamw
               : OptimizerKind::adam;
  o.lr = reader.number("lr", o.lr, 0.0);
  if (!(o.lr > 0))
    throw std::invalid_argument(context + ": field 'lr' must be > 0, got " + std::to_string(o.lr));
  o.beta1 = reader.number("beta1", o.beta1, 0.0, 0.999999);
  o.beta2 = reader.number("beta2", o.beta2, 0.0, 0.999999);
  o.eps = reader.number("eps", o.eps, 0.0);
  o.weight_decay = reader.number("weight_decay", o.weight_decay, 0.0);
  o.decay_all_parameters = reader.boolean("decay_all_parameters", o.decay_all_parameters);
  reader.finish();
  return o;
}

nlohmann::json optimizer_json(const OptimizerConfig& o) {
  return {{"kind", optimizer_kind_name(o.kind)},
          {"lr", o.lr},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"eps", o.eps},
          {"weight_decay", o.weight_decay},
          {"decay_all_parameters", o.decay_all_parameters}};
}

// base_lr is not read: it is always the optimizer's lr.
optim::LrScheduleOptions read_lr_schedule(const nlohmann::json& section, double lr) {
  const std::string context = std::string(kContext) + ".lr_schedule";
  nn::ConfigReader reader(section, context);
  optim::LrScheduleOptions o;
  o.kind = optim::parse_lr_schedule_kind(
      reader.choice("kind", "constant", {"constant", "step", "warmup_cosine"}));
  o.base_lr = lr;
  o.step_size = reader.integer("step_size", o.step_size);
  o.gamma = reader.number("gamma", o.gamma, 0.0);
  o.warmup_steps = reader.integer("warmup_steps", o.warmup_steps, 0);
  o.total_steps = reader.integer("total_steps", o.total_steps, 0);
  o.min_lr = reader.number("min_lr", o.min_lr, 0.0);
  reader.finish();
  with_context(context, [&] { return optim::make_lr_schedule(o); });
  return o;
}

nlohmann::json lr_schedule_json(const optim::LrScheduleOptions& o) {
  return {{"kind", optim::lr_schedule_kind_name(o.kind)},
          {"step_size", o.step_size},
          {"gamma", o.gamma},
          {"warmup_steps", o.warmup_steps},
          {"total_steps", o.total_steps},
          {"min_lr", o.min_lr}};
}

void read_training(const nlohmann::json& section, DpmTrainingConfig& c) {
  nn::ConfigReader reader(section, std::string(kContext) + ".training");
  TrainerOptions& t = c.trainer;
  t.batch_size = reader.integer("batch_size", t.batch_size);
  t.max_epochs = reader.integer("max_epochs", t.max_epochs);
  t.steps_per_epoch = reader.integer("steps_per_epoch", t.steps_per_epoch, 0);
  t.max_steps = reader.integer("max_steps", t.max_steps, 0);
  t.max_seconds = reader.number("max_seconds", t.max_seconds, 0.0);
  t.min_epochs = reader.integer("min_epochs", t.min_epochs, 0);
  t.patience = reader.integer("patience", t.patience, 0);
  t.grad_clip = reader.number("grad_clip", t.grad_clip, 0.0);
  t.ema_decay = reader.number("ema_decay", t.ema_decay, 0.0, 1.0);
  t.ema_warmup = reader.boolean("ema_warmup", t.ema_warmup);
  t.log_every = reader.integer("log_every", t.log_every);
  t.resume_every = reader.integer("resume_every", t.resume_every, 0);
  t.out_dir = reader.string("out_dir", t.out_dir);
  t.seed = static_cast<uint64_t>(reader.integer("seed", static_cast<int64_t>(t.seed), 0));
  t.progress = reader.boolean("progress", t.progress);
  t.weight_check_every = reader.integer("weight_check_every", t.weight_check_every, 0);
  t.sync_batchnorm = reader.boolean("sync_batchnorm", t.sync_batchnorm);
  c.init_seed =
      static_cast<uint64_t>(reader.integer("init_seed", static_cast<int64_t>(c.init_seed), 0));
  c.resume_from = reader.string("resume_from", c.resume_from);
  reader.finish();
}

nlohmann::json training_json(const DpmTrainingConfig& c) {
  const TrainerOptions& t = c.trainer;
  return {{"batch_size", t.batch_size},
          {"max_epochs", t.max_epochs},
          {"steps_per_epoch", t.steps_per_epoch},
          {"max_steps", t.max_steps},
          {"max_seconds", t.max_seconds},
          {"min_epochs", t.min_epochs},
          {"patience", t.patience},
          {"grad_clip", t.grad_clip},
          {"ema_decay", t.ema_decay},
          {"ema_warmup", t.ema_warmup},
          {"log_every", t.log_every},
          {"resume_every", t.resume_every},
          {"out_dir", t.out_dir},
          {"seed", t.seed},
          {"progress", t.progress},
          {"weight_check_every", t.weight_check_every},
          {"sync_batchnorm", t.sync_batchnorm},
          {"init_seed", c.init_seed},
          {"resume_from", c.resume_from}};
}

// Keeps the importance sampler's loss history in resume files, so a resumed run draws the
// same steps.
class ImportanceSamplerState : public Callback {
 public:
  explicit ImportanceSamplerState(std::shared_ptr<diffusion::Objective> objective)
      : objective_(std::move(objective)) {}
  std::string name() const override { return "importance_sampler"; }
  NamedTensors state_dict() const override { return objective_->sampler().state_dict(); }
  void load_state_dict(const NamedTensors& state) override {
    objective_->sampler().load_state_dict(state);
  }

 private:
  std::shared_ptr<diffusion::Objective> objective_;
};

// A forward pass on two samples, so a model/data mismatch fails here with a clear message
// rather than at the first training step.
void check_model_takes(nn::NoiseModel& model, const Tensor& data, const char* what) {
  if (!data.defined() || data.ndim() < 2 || data.size(0) < 1)
    throw std::invalid_argument(std::string("train_dpm: ") + what +
                                " must be [n, ...] with n >= 1, got " +
                                (data.defined() ? data.shape().str() : "undefined"));
  const int64_t n = std::min<int64_t>(2, data.size(0));
  NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();
  try {
    model.forward(Variable(data.narrow(0, 0, n).contiguous()),
                  std::vector<int64_t>(static_cast<size_t>(n), 0));
  } catch (const std::invalid_argument& e) {
    model.train(training);
    throw std::invalid_argument(std::string("train_dpm: the model (") + model.config().dump() +
                                ") cannot take " + what + " of shape " + data.shape().str() + ": " +
                                e.what());
  }
  model.train(training);
}

}  // namespace

DpmTrainingConfig::DpmTrainingConfig()
    : model(nn::ResidualMLPOptions{}.to_json()),
      schedule(diffusion::Schedule::paper_linear(300).to_json()) {}

nlohmann::json DpmTrainingConfig::to_json() const {
  return {{"model", model},
          {"schedule", schedule},
          {"objective", objective.to_json()},
          {"optimizer", optimizer_json(optimizer)},
          {"lr_schedule", lr_schedule ? lr_schedule_json(*lr_schedule) : nlohmann::json(nullptr)},
          {"training", training_json(*this)}};
}

DpmTrainingConfig DpmTrainingConfig::from_json(const nlohmann::json& config) {
  nn::ConfigReader reader(config, kContext);
  DpmTrainingConfig c;
  if (nlohmann::json model = reader.object("model"); !model.empty()) c.model = model;
  if (nlohmann::json schedule = reader.object("schedule"); !schedule.empty()) {
    with_context(std::string(kContext) + ".schedule",
                 [&] { return diffusion::Schedule::from_json(schedule); });
    c.schedule = schedule;
  }
  c.objective = with_context(std::string(kContext) + ".objective", [&] {
    return diffusion::ObjectiveOptions::from_json(reader.object("objective"));
  });
  c.optimizer = read_optimizer(reader.object("optimizer"));
  if (nlohmann::json lr = reader.object("lr_schedule"); !lr.empty())
    c.lr_schedule = read_lr_schedule(lr, c.optimizer.lr);
  read_training(reader.object("training"), c);
  reader.finish();
  return c;
}

void fit_model_to_data(DpmTrainingConfig& config, const Shape& model_shape) {
  const std::string arch = config.model.value("arch", "");
  if (nn::takes_flat_vectors(config.model)) config.model["dim"] = model_shape.numel();
  if (arch == "two_layer")
    config.model["steps"] = diffusion::Schedule::from_json(config.schedule).T();
  else if (arch == "unet1d" || arch == "unet2d")
    config.model["data_channels"] = model_shape[0];
}

DpmTrainingOutput train_dpm(const DpmTrainingConfig& config, const Tensor& train_data,
                            const Tensor& val_data,
                            const std::vector<std::shared_ptr<Callback>>& callbacks,
                            const DpmTrainingExtras& extras) {
  diffusion::Schedule schedule = with_context("train_dpm: schedule config", [&] {
    return diffusion::Schedule::from_json(config.schedule);
  });
  Rng init_rng(config.init_seed);
  std::shared_ptr<nn::NoiseModel> model = with_context(
      "train_dpm: model config", [&] { return nn::make_noise_model(config.model, init_rng); });
  check_model_takes(*model, train_data, "training data");
  if (val_data.defined()) check_model_takes(*model, val_data, "validation data");
  auto objective = std::make_shared<diffusion::Objective>(model, schedule, config.objective);

  optim::AdamOptions adam{config.optimizer.lr,
                          {config.optimizer.beta1, config.optimizer.beta2},
                          config.optimizer.eps,
                          config.optimizer.weight_decay,
                          config.optimizer.decay_all_parameters};
  std::unique_ptr<optim::Adam> optimizer =
      config.optimizer.kind == OptimizerKind::adamw
          ? std::make_unique<optim::AdamW>(model->arena(), adam)
          : std::make_unique<optim::Adam>(model->arena(), adam);

  TrainerOptions options = config.trainer;
  options.lr_schedule = config.lr_schedule;
  if (options.lr_schedule) options.lr_schedule->base_lr = config.optimizer.lr;
  options.checkpoint_metadata =
      diffusion::dpm_checkpoint_metadata(*model, schedule, config.objective);
  options.checkpoint_metadata[kTrainingConfigMetadataKey] = config.to_json().dump();
  for (const auto& [key, value] : extras.checkpoint_metadata)
    if (!options.checkpoint_metadata.emplace(key, value).second)
      throw std::invalid_argument("train_dpm: extra checkpoint metadata key '" + key +
                                  "' is one train_dpm writes itself");
  const dist::Communicator& ranks =
      options.communicator ? *options.communicator : dist::Communicator::world();
  if (!options.out_dir.empty() && ranks.is_root()) {
    std::filesystem::create_directories(options.out_dir);
    std::ofstream out(std::filesystem::path(options.out_dir) / "config.used.json");
    out << config.to_json().dump(2) << "\n";
    if (!out)
      throw std::runtime_error("train_dpm: cannot write config.used.json in " + options.out_dir);
  }

  Trainer trainer(*model, *optimizer, diffusion::make_loss_fn(objective), train_data, val_data,
                  options);
  for (const auto& callback : callbacks) trainer.add_callback(callback);
  if (extras.model_callbacks)
    for (const auto& callback : extras.model_callbacks(model, *objective)) trainer.add_callback(callback);
  if (config.objective.importance_sampling)
    trainer.add_callback(std::make_shared<ImportanceSamplerState>(objective));
  if (!config.resume_from.empty()) trainer.resume(config.resume_from);
  TrainResult result = trainer.fit();

  if (!options.out_dir.empty() && std::filesystem::exists(trainer.best_path()))
    nn::load_state(*model, trainer.best_path());
  else if (trainer.ema())
    trainer.ema()->swap();  // the trainer goes away with this scope: leave the average in place
  return {model, schedule, objective, result};
}

}  // namespace dpm::train
