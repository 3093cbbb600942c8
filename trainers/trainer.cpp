#include "trainers/trainer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "autograd/io/safetensors.hpp"
#include "autograd/ops/arith.hpp"
#include "autograd/progress_line.hpp"
#include "nn/batchnorm.hpp"
#include "nn/checkpoint.hpp"

namespace dpm::train {
namespace {

// Streams split from the seed, one per purpose, so adding a consumer never shifts another.
constexpr uint64_t kDataStream = 1, kNoiseStream = 2, kValidationStream = 3;
constexpr const char* kResumeKey = "dpmlab.resume";

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) {
  g_interrupted = 1;
}

// Installs the SIGINT flag handler for the duration of fit(); a second Ctrl-C kills as usual.
class SigintScope {
 public:
  SigintScope() {
    g_interrupted = 0;
    struct sigaction action {};
    action.sa_handler = on_sigint;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_);
  }
  ~SigintScope() { sigaction(SIGINT, &previous_, nullptr); }

 private:
  struct sigaction previous_ {};
};

// Swaps the EMA weights in for evaluation and saving, and back out on scope exit.
class EmaScope {
 public:
  explicit EmaScope(optim::Ema* ema) : ema_(ema) {
    if (ema_) ema_->swap();
  }
  ~EmaScope() {
    if (ema_) ema_->swap();
  }

 private:
  optim::Ema* ema_;
};

// Resume fields are untrusted input: each value is type-checked before use (a float where a
// count belongs would be undefined behaviour to convert).
int64_t as_count(const nlohmann::json& value) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0)
    throw std::runtime_error("got " + value.dump() + ", expected an integer >= 0");
  return value.get<int64_t>();
}

double as_number(const nlohmann::json& value) {
  if (!value.is_number()) throw std::runtime_error("got " + value.dump() + ", expected a number");
  return value.get<double>();
}

Rng::State as_rng_state(const nlohmann::json& value) {
  Rng::State state{};
  if (!value.is_array() || value.size() != state.size())
    throw std::runtime_error("got " + value.dump() + ", expected " + std::to_string(state.size()) +
                             " unsigned integers");
  for (size_t i = 0; i < state.size(); ++i) {
    if (!value[i].is_number_unsigned())
      throw std::runtime_error("got " + value.dump() + ", expected unsigned integers");
    state[i] = value[i].get<uint64_t>();
  }
  return state;
}

// Gives every BatchNorm of the model the reducer: statistics over the whole global batch.
void synchronize_batch_statistics(nn::Module& module, const StatisticsReducer& reduce) {
  if (auto* norm = dynamic_cast<nn::BatchNorm*>(&module)) norm->set_statistics_reducer(reduce);
  for (const auto& [name, child] : module.named_children())
    synchronize_batch_statistics(*child, reduce);
}

}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::max_epochs:
      return "max_epochs";
    case StopReason::max_steps:
      return "max_steps";
    case StopReason::time_budget:
      return "time_budget";
    case StopReason::early_stopping:
      return "early_stopping";
    case StopReason::interrupted:
      return "interrupted";
    case StopReason::non_finite:
      return "non_finite";
  }
  return "unknown";
}

Trainer::Trainer(nn::Module& model, optim::Optimizer& optimizer, LossFn loss, Tensor train_data,
                 Tensor val_data, TrainerOptions options)
    : model_(model),
      optimizer_(optimizer),
      loss_(std::move(loss)),
      val_data_(std::move(val_data)),
      options_(std::move(options)),
      loader_(train_data, {options_.batch_size, true, true}, Rng(options_.seed).split(kDataStream)),
      noise_rng_(Rng(options_.seed).split(kNoiseStream)),
      loss_spikes_(options_.spike),
      grad_norm_spikes_(options_.spike),
      comm_(options_.communicator ? *options_.communicator : dist::Communicator::world()) {
  if (&optimizer_.arena() != &model_.arena())
    throw std::invalid_argument("Trainer: the optimizer must be built on model.arena()");
  if (train_data.size(0) < options_.batch_size)
    throw std::invalid_argument("Trainer: batch_size " + std::to_string(options_.batch_size) +
                                " exceeds the " + std::to_string(train_data.size(0)) +
                                " training samples");
  if (options_.max_epochs < 1 || options_.log_every < 1 || options_.steps_per_epoch < 0 ||
      options_.max_steps < 0 || options_.resume_every < 0 || options_.grad_clip < 0)
    throw std::invalid_argument(
        "Trainer: max_epochs and log_every must be >= 1; steps_per_epoch, max_steps, "
        "resume_every and grad_clip must be >= 0");
  if (options_.batch_size < comm_.size())
    throw std::invalid_argument("Trainer: batch_size " + std::to_string(options_.batch_size) +
                                " is smaller than the " + std::to_string(comm_.size()) +
                                " ranks (each takes a share of every batch)");
  if (options_.weight_check_every < 0)
    throw std::invalid_argument("Trainer: weight_check_every must be >= 0");
  if (options_.ema_decay < 0 || options_.ema_decay >= 1)
    throw std::invalid_argument("Trainer: ema_decay must be in [0, 1), got " +
                                std::to_string(options_.ema_decay));
  if (options_.lr_schedule) schedule_ = optim::make_lr_schedule(*options_.lr_schedule);
  if (options_.ema_decay > 0)
    ema_ = std::make_unique<optim::Ema>(optimizer_.arena(), options_.ema_warmup);
  if (writes_files()) std::filesystem::create_directories(options_.out_dir);
  if (options_.sync_batchnorm && comm_.distributed())
    synchronize_batch_statistics(model_, [comm = &comm_](double* values, int64_t count) {
      comm->allreduce_sum(values, count);
    });
}

// The model outlives its trainer: its BatchNorms go back to their own statistics, so a later
// forward in training mode does not wait for ranks that are not there.
Trainer::~Trainer() {
  if (options_.sync_batchnorm && comm_.distributed())
    synchronize_batch_statistics(model_, StatisticsReducer{});
}

void Trainer::add_callback(std::shared_ptr<Callback> callback) {
  callbacks_.push_back(std::move(callback));
}

std::string Trainer::resume_path() const {
  return options_.out_dir + "/resume.safetensors";
}
std::string Trainer::best_path() const {
  return options_.out_dir + "/best.safetensors";
}
std::string Trainer::metrics_path() const {
  return options_.out_dir + "/metrics.jsonl";
}

int64_t Trainer::steps_per_epoch() const {
  return options_.steps_per_epoch > 0 ? options_.steps_per_epoch : loader_.batches_per_epoch();
}

bool Trainer::writes_files() const {
  return !options_.out_dir.empty() && comm_.is_root();
}

std::optional<datasets::RowRange> Trainer::shard_of_batch(int64_t batch_rows) const {
  if (!comm_.distributed()) return std::nullopt;
  const dist::Shard shard = dist::shard_of(batch_rows, comm_.rank(), comm_.size());
  return datasets::RowRange{shard.begin, shard.end};
}

void Trainer::check_weights_agree() const {
  const Tensor& values = optimizer_.arena().values();
  uint64_t hash = 1469598103934665603ull;  // FNV-1a over the weights' bytes
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
  for (size_t i = 0; i < static_cast<size_t>(values.numel()) * sizeof(float); ++i)
    hash = (hash ^ bytes[i]) * 1099511628211ull;
  const auto [low, high] = comm_.min_max(hash);
  if (low != high)
    throw std::runtime_error("Trainer: the weights differ between ranks at step " +
                             std::to_string(step_) +
                             " (data-parallel ranks must apply identical steps; checksums " +
                             std::to_string(low) + " and " + std::to_string(high) + ")");
}

void Trainer::log(const nlohmann::json& record) {
  if (!writes_files()) return;
  std::ofstream out(metrics_path(), std::ios::app);
  out << record.dump() << '\n';
  if (!out) throw std::runtime_error("Trainer: cannot append to " + metrics_path());
}

double Trainer::evaluate(const Tensor& data) {
  bool was_training = model_.is_training();
  model_.eval();
  EmaScope ema_weights(ema_.get());
  NoGradGuard no_grad;
  Rng rng = Rng(options_.seed).split(kValidationStream);  // the same noise at every evaluation
  datasets::DataLoader loader(data, {options_.batch_size, false, false});
  double totals[2] = {0, 0};  // loss sum, rows
  for (datasets::Batch batch : loader) {
    batch.shard = shard_of_batch(batch.data.size(0));
    const auto b = static_cast<double>(batch.loss_rows().size());
    totals[0] += loss_(batch, rng).item() * b;
    totals[1] += b;
  }
  comm_.allreduce_sum(totals, 2);
  model_.train(was_training);
  return totals[0] / totals[1];
}

void Trainer::save_best() {
  if (!writes_files()) return;
  EmaScope ema_weights(ema_.get());
  auto metadata = options_.checkpoint_metadata;
  metadata["dpmlab.step"] = std::to_string(step_);
  metadata["dpmlab.epoch"] = std::to_string(epoch_);
  if (best_val_) metadata["dpmlab.val_loss"] = std::to_string(*best_val_);
  nn::save_state(best_path(), model_, metadata);
}

struct Trainer::ResumeField {
  const char* key;
  std::function<nlohmann::json(const Trainer&)> save;
  std::function<void(Trainer&, const nlohmann::json&)> load;  // throws naming what it expected
};

const std::vector<Trainer::ResumeField>& Trainer::resume_fields() {
  auto count = [](const char* key, int64_t Trainer::*member) {
    return ResumeField{key, [member](const Trainer& t) { return nlohmann::json(t.*member); },
                       [member](Trainer& t, const nlohmann::json& v) { t.*member = as_count(v); }};
  };
  auto number = [](const char* key, double Trainer::*member) {
    return ResumeField{key, [member](const Trainer& t) { return nlohmann::json(t.*member); },
                       [member](Trainer& t, const nlohmann::json& v) { t.*member = as_number(v); }};
  };
  static const std::vector<ResumeField> fields = {
      {"optimizer", [](const Trainer& t) { return nlohmann::json(t.optimizer_.name()); },
       [](Trainer& t, const nlohmann::json& v) {
         if (v != t.optimizer_.name())
           throw std::runtime_error("the file was written with " + v.dump() + ", this run uses '" +
                                    t.optimizer_.name() + "'");
       }},
      count("step", &Trainer::step_),
      count("epoch", &Trainer::epoch_),
      count("step_in_epoch", &Trainer::step_in_epoch_),
      number("epoch_loss_sum", &Trainer::epoch_loss_sum_),
      {"optimizer_step", [](const Trainer& t) { return nlohmann::json(t.optimizer_.step_count()); },
       [](Trainer& t, const nlohmann::json& v) { t.optimizer_.set_step_count(as_count(v)); }},
      {"lr", [](const Trainer& t) { return nlohmann::json(t.optimizer_.lr()); },
       [](Trainer& t, const nlohmann::json& v) { t.optimizer_.set_lr(as_number(v)); }},
      // null without EMA, so a file and a run that disagree on EMA are told apart here.
      {"ema_updates",
       [](const Trainer& t) {
         return t.ema_ ? nlohmann::json(t.ema_->update_count()) : nlohmann::json(nullptr);
       },
       [](Trainer& t, const nlohmann::json& v) {
         if (v.is_null() != !t.ema_)
           throw std::runtime_error(t.ema_ ? "the file has no EMA weights but this run uses EMA"
                                           : "the file has EMA weights but this run has no EMA "
                                             "(set ema_decay)");
         if (t.ema_) t.ema_->set_update_count(as_count(v));
       }},
      {"noise_rng", [](const Trainer& t) { return nlohmann::json(t.noise_rng_.state()); },
       [](Trainer& t, const nlohmann::json& v) { t.noise_rng_.set_state(as_rng_state(v)); }},
      {"data_position",
       [](const Trainer& t) { return nlohmann::json(t.loader_.position().serialize()); },
       [](Trainer& t, const nlohmann::json& v) {
         if (!v.is_string()) throw std::runtime_error("got " + v.dump() + ", expected a string");
         t.loader_.set_position(datasets::DataLoaderPosition::deserialize(v.get<std::string>()));
       }},
      count("best_epoch", &Trainer::best_epoch_),
      count("epochs_since_best", &Trainer::epochs_since_best_),
      number("elapsed_seconds", &Trainer::elapsed_before_),
      {"best_val_loss",  // null until a validation loss exists
       [](const Trainer& t) {
         return t.best_val_ ? nlohmann::json(*t.best_val_) : nlohmann::json(nullptr);
       },
       [](Trainer& t, const nlohmann::json& v) {
         t.best_val_.reset();
         if (!v.is_null()) t.best_val_ = as_number(v);
       }},
      {"spike_detectors",
       [](const Trainer& t) {
         return nlohmann::json{{"loss", t.loss_spikes_.state_json()},
                               {"grad_norm", t.grad_norm_spikes_.state_json()}};
       },
       [](Trainer& t, const nlohmann::json& v) {
         if (!v.is_object() || v.size() != 2 || !v.contains("loss") || !v.contains("grad_norm"))
           throw std::runtime_error("got " + v.dump() + R"(, expected {"loss", "grad_norm"})");
         t.loss_spikes_.load_state_json(v.at("loss"));
         t.grad_norm_spikes_.load_state_json(v.at("grad_norm"));
       }},
  };
  return fields;
}

template <typename Self, typename Visit>
void Trainer::visit_state_parts(Self& self, Visit&& visit) {
  visit(std::string("model."), self.model_);
  visit(std::string("optimizer."), self.optimizer_);
  if (self.ema_) visit(std::string("ema."), *self.ema_);
  for (const auto& callback : self.callbacks_)
    visit("callback." + callback->name() + ".", *callback);
}

NamedTensors Trainer::state_dict() const {
  NamedTensors state;
  visit_state_parts(*this, [&](const std::string& prefix, const auto& part) {
    for (auto& entry : with_prefix(prefix, part.state_dict())) state.push_back(std::move(entry));
  });
  return state;
}

void Trainer::load_state_dict(const NamedTensors& state) {
  std::vector<std::string> prefixes;
  visit_state_parts(*this, [&](const std::string& prefix, auto&) { prefixes.push_back(prefix); });
  for (const auto& [name, tensor] : state) {
    bool claimed = false;
    for (const std::string& prefix : prefixes) claimed = claimed || name.rfind(prefix, 0) == 0;
    if (claimed) continue;
    std::string parts;
    for (const std::string& prefix : prefixes) parts += (parts.empty() ? "" : ", ") + prefix;
    throw std::invalid_argument("unexpected tensor '" + name + "' (this run saves only " + parts +
                                ")");
  }
  visit_state_parts(*this, [&](const std::string& prefix, auto& part) {
    try {
      part.load_state_dict(entries_under(prefix, state));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("tensors under '" + prefix + "': " + e.what());
    }
  });
}

void Trainer::save_resume(const std::string& path) const {
  nlohmann::json fields = {{"version", kResumeFormatVersion}};
  for (const ResumeField& field : resume_fields()) fields[field.key] = field.save(*this);
  auto metadata = options_.checkpoint_metadata;
  metadata[kResumeKey] = fields.dump();
  write_safetensors(path, state_dict(), metadata);
}

void Trainer::resume(const std::string& path) {
  SafeTensors file = read_safetensors(path);
  auto it = file.metadata.find(kResumeKey);
  if (it == file.metadata.end())
    throw std::runtime_error(path + ": not a resume file (no '" + std::string(kResumeKey) +
                             "' metadata; model checkpoints cannot be resumed from)");
  try {
    const nlohmann::json fields = nlohmann::json::parse(it->second);
    if (!fields.is_object())
      throw std::runtime_error("'" + std::string(kResumeKey) + "' is " + fields.dump() +
                               ", expected an object");
    const nlohmann::json version = fields.value("version", nlohmann::json());
    if (version != kResumeFormatVersion)
      throw std::runtime_error("resume format version " +
                               (version.is_null() ? std::string("missing") : version.dump()) +
                               ", expected version " + std::to_string(kResumeFormatVersion) +
                               " (the file was written by another dpmlab version; resume with "
                               "that version or start a new run)");
    for (const auto& [key, value] : fields.items()) {
      bool known = key == "version";
      for (const ResumeField& field : resume_fields()) known = known || key == field.key;
      if (!known) throw std::runtime_error("unknown field '" + key + "'");
    }
    for (const ResumeField& field : resume_fields()) {
      if (!fields.contains(field.key))
        throw std::runtime_error(std::string("field '") + field.key + "' is missing");
      try {
        field.load(*this, fields.at(field.key));
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string("field '") + field.key + "': " + e.what());
      }
    }
    load_state_dict(file.tensors);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": malformed '" + std::string(kResumeKey) +
                             "' metadata: " + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

bool Trainer::run_step(TrainResult& result, double& running_loss) {
  datasets::Batch batch = loader_.next_batch();
  batch.shard = shard_of_batch(batch.data.size(0));
  if (schedule_) optimizer_.set_lr((*schedule_)(step_));
  optimizer_.zero_grad();
  Variable loss = loss_(batch, noise_rng_);
  double value = loss.item();
  if (comm_.distributed()) {
    // The global batch's loss is the rows-weighted sum of the shards'; SIGINT on any rank stops
    // all of them after this step. One all-reduce for both.
    const double share =
        static_cast<double>(batch.loss_rows().size()) / static_cast<double>(batch.data.size(0));
    double packed[2] = {value * share, g_interrupted ? 1.0 : 0.0};
    comm_.allreduce_sum(packed, 2);
    value = packed[0];
    interrupted_ = packed[1] > 0;
    loss = loss * static_cast<float>(share);
  }
  const int64_t this_step = step_ + 1;
  if (!std::isfinite(value)) {
    result.reason = StopReason::non_finite;
    std::ostringstream msg;
    msg << "loss is " << value << " at step " << this_step << " (epoch " << epoch_ + 1
        << "); stopped before updating the weights, the last checkpoint is kept";
    result.message = msg.str();
    return false;
  }
  loss.backward();
  nn::ParameterArena& arena = optimizer_.arena();
  comm_.allreduce_sum(arena.grads().data(), arena.grads().numel());
  if (auto bad = arena.first_nonfinite_grad()) {
    result.reason = StopReason::non_finite;
    result.message = "gradient of '" + *bad + "' is not finite at step " +
                     std::to_string(this_step) + " (loss " + std::to_string(value) +
                     "); stopped before updating the weights, the last checkpoint is kept";
    return false;
  }
  StepInfo info{this_step, epoch_, value, optimizer_.lr(), this_step % options_.log_every == 0};
  nlohmann::json record;
  const double grad_norm =
      options_.grad_clip > 0 ? arena.clip_grad_norm(options_.grad_clip) : arena.grad_norm();
  if (options_.grad_clip > 0 || info.logging) record["grad_norm"] = grad_norm;
  const bool spike = detect_spikes(this_step, value, grad_norm);
  optimizer_.step();
  if (ema_) ema_->update(options_.ema_decay);
  step_ = this_step;
  ++step_in_epoch_;
  epoch_loss_sum_ += value;
  running_loss = running_loss == 0 ? value : 0.98 * running_loss + 0.02 * value;

  // A spike gets its metrics line even between logging steps.
  if (info.logging || spike) {
    record.update({{"step", step_}, {"epoch", epoch_}, {"loss", value}, {"lr", info.lr}});
    if (spike) record.update({{"spike", true}, {"grad_norm", grad_norm}});
  }
  for (const auto& cb : callbacks_) cb->on_step(info, record);
  if (info.logging || spike) log(record);
  if (comm_.distributed() && options_.weight_check_every > 0 &&
      step_ % options_.weight_check_every == 0)
    check_weights_agree();
  if (options_.resume_every > 0 && step_ % options_.resume_every == 0 && writes_files())
    save_resume(resume_path());
  return true;
}

bool Trainer::detect_spikes(int64_t step, double loss, double grad_norm) {
  std::ostringstream warning;
  auto observe = [&](SpikeDetector& detector, const char* what, double value) {
    const double mean = detector.mean();
    if (auto z = detector.observe(value))
      warning << "; " << what << " " << value << " is " << *z
              << " standard deviations above its running mean " << mean;
  };
  observe(loss_spikes_, "loss", loss);
  observe(grad_norm_spikes_, "gradient norm", grad_norm);
  if (warning.tellp() == 0) return false;
  // On a terminal the progress line is redrawn in place: start the warning on a line of its own.
  std::fprintf(stderr, "%swarning: spike at step %lld%s\n", ::isatty(STDERR_FILENO) ? "\n" : "",
               static_cast<long long>(step), warning.str().c_str());
  return true;
}

void Trainer::end_epoch(TrainResult& result, double train_loss) {
  ++epoch_;
  step_in_epoch_ = 0;
  epoch_loss_sum_ = 0;
  EpochInfo info{epoch_, step_, train_loss, std::nullopt, false};
  if (val_data_.defined()) {
    info.val_loss = evaluate(val_data_);
    info.improved = !best_val_ || *info.val_loss < *best_val_;
  } else {
    info.improved = true;  // without validation the latest weights are the best we know
  }
  if (info.improved) {
    best_val_ = info.val_loss;
    best_epoch_ = epoch_;
    epochs_since_best_ = 0;
    save_best();
  } else {
    ++epochs_since_best_;
  }
  nlohmann::json record = {{"epoch", epoch_}, {"step", step_}, {"train_loss", train_loss}};
  if (info.val_loss) record["val_loss"] = *info.val_loss;
  for (const auto& cb : callbacks_) cb->on_epoch(info, record);
  log(record);
  if (val_data_.defined() && options_.patience > 0 && epoch_ >= options_.min_epochs &&
      epochs_since_best_ >= options_.patience) {
    result.reason = StopReason::early_stopping;
    result.message = "validation loss has not improved for " + std::to_string(epochs_since_best_) +
                     " epochs (best " + std::to_string(*best_val_) + " at epoch " +
                     std::to_string(best_epoch_) + ")";
  }
}

TrainResult Trainer::fit() {
  SigintScope sigint;
  TrainResult result;
  model_.train();
  const int64_t per_epoch = steps_per_epoch();
  int64_t total = options_.max_epochs * per_epoch;
  if (options_.max_steps > 0) total = std::min(total, options_.max_steps);
  const int64_t start_step = step_;
  // A resumed run counts and times the steps it has left, so its rate and ETA are its own.
  ProgressLine progress("train", std::max<int64_t>(0, total - start_step), "steps",
                        options_.progress && comm_.is_root() ? stderr : nullptr);
  double running_loss = 0;
  bool stop = false;

  auto elapsed = [&] { return elapsed_before_ + progress.elapsed_seconds(); };
  while (!stop && epoch_ < options_.max_epochs) {
    while (step_in_epoch_ < per_epoch) {
      if (!run_step(result, running_loss)) {
        stop = true;
        break;
      }
      char status[128];
      std::snprintf(status, sizeof status, "epoch %lld | loss %.4g | lr %.3g",
                    static_cast<long long>(epoch_ + 1), running_loss, optimizer_.lr());
      progress.update(step_ - start_step, status);
      // One process stops after the step a SIGINT arrives in; ranks after the step they agreed on.
      if (comm_.distributed() ? interrupted_ : g_interrupted != 0) {
        result.reason = StopReason::interrupted;
        result.message = "interrupted (SIGINT) at step " + std::to_string(step_);
      } else if (options_.max_steps > 0 && step_ >= options_.max_steps) {
        result.reason = StopReason::max_steps;
        result.message = "reached max_steps = " + std::to_string(options_.max_steps);
      } else if (options_.max_seconds > 0 && elapsed() >= options_.max_seconds) {
        result.reason = StopReason::time_budget;
        result.message =
            "reached the time budget of " + ProgressLine::format_duration(options_.max_seconds);
      } else {
        continue;
      }
      stop = true;
      break;
    }
    if (stop) break;
    end_epoch(result, epoch_loss_sum_ / static_cast<double>(per_epoch));
    stop = result.reason == StopReason::early_stopping;
  }
  if (!stop) result.message = "reached max_epochs = " + std::to_string(options_.max_epochs);

  // A run cut short mid-epoch still leaves a best checkpoint behind.
  if ((result.reason == StopReason::max_steps || result.reason == StopReason::time_budget ||
       result.reason == StopReason::interrupted) &&
      step_in_epoch_ > 0) {
    std::optional<double> val;
    if (val_data_.defined()) val = evaluate(val_data_);
    if (!val_data_.defined() || !best_val_ || *val < *best_val_) {
      best_val_ = val;
      best_epoch_ = epoch_;
      save_best();
    }
  }
  elapsed_before_ = elapsed();
  if (writes_files() && result.reason != StopReason::non_finite) save_resume(resume_path());
  comm_.barrier();  // the other ranks read what rank 0 wrote only once it is there

  result.steps = step_;
  result.epochs = epoch_;
  result.best_val_loss = best_val_;
  result.best_epoch = best_epoch_;
  result.seconds = elapsed_before_;
  progress.finish(std::string(stop_reason_name(result.reason)) + ": " + result.message);
  return result;
}

}  // namespace dpm::train
