#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/ops.hpp"
#include "nn/activation.hpp"
#include "nn/batchnorm.hpp"
#include "nn/linear.hpp"
#include "nn/optim/adam.hpp"
#include "nn/sequential.hpp"
#include "trainers/trainer.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using dpm::testing::TempDir;
using namespace dpm;

namespace {

// Noisy regression y = sin(3x) from (x, y) rows, with BatchNorm so buffers must round-trip.
Tensor regression_data(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Tensor d = Tensor::empty({n, 2});
  for (int64_t i = 0; i < n; ++i) {
    double x = rng.uniform(-1, 1);
    d.at({i, 0}) = static_cast<float>(x);
    d.at({i, 1}) = static_cast<float>(std::sin(3 * x));
  }
  return d;
}

struct Setup {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Adam> optimizer;
  std::unique_ptr<train::Trainer> trainer;
};

// The loss adds input noise from the trainer's stream, so that stream must be resumed too.
train::LossFn regression_loss(std::shared_ptr<nn::Sequential> model) {
  return [model](const datasets::Batch& batch, Rng& rng) {
    Variable xy(batch.data);
    Variable x = slice(xy, 1, 0, 1), y = slice(xy, 1, 1, 2);
    Variable noisy = x + Variable(randn(x.shape(), rng, 0.0f, 0.01f));
    return mse_loss(model->forward(noisy), y);
  };
}

Setup make_setup(train::TrainerOptions options, uint64_t init_seed = 5) {
  Rng rng(init_seed);
  Setup s;
  s.model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(1, 32, rng), std::make_shared<nn::BatchNorm>(32),
      std::make_shared<nn::SiLU>(), std::make_shared<nn::Linear>(32, 1, rng)});
  s.optimizer = std::make_unique<optim::Adam>(s.model->arena(), optim::AdamOptions{.lr = 1e-2});
  options.progress = false;
  s.trainer =
      std::make_unique<train::Trainer>(*s.model, *s.optimizer, regression_loss(s.model),
                                       regression_data(256, 1), regression_data(64, 2), options);
  return s;
}

std::vector<float> weights(Setup& s) {
  return s.model->arena().values().to_vector();
}

}  // namespace

TEST_CASE("training lowers the loss and writes metrics and checkpoints", "[trainer]") {
  TempDir tmp("dpm_trainer_basic");
  fs::path dir = tmp.path;
  train::TrainerOptions options;
  options.batch_size = 32;
  options.max_epochs = 40;
  options.min_epochs = 100;  // no early stopping here
  options.log_every = 4;
  options.out_dir = dir;
  Setup s = make_setup(options);
  double before = s.trainer->evaluate(regression_data(64, 2));
  train::TrainResult r = s.trainer->fit();
  CHECK(r.reason == train::StopReason::max_epochs);
  CHECK(r.steps == 40 * 8);
  REQUIRE(r.best_val_loss);
  INFO("validation loss before " << before << ", best after " << *r.best_val_loss);
  CHECK(*r.best_val_loss < 0.1 * before);
  CHECK(fs::exists(dir / "best.safetensors"));
  CHECK(fs::exists(dir / "resume.safetensors"));

  std::ifstream metrics(dir / "metrics.jsonl");
  int step_lines = 0, epoch_lines = 0;
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) {
      ++step_lines;
      CHECK(j.contains("grad_norm"));
      CHECK(j["lr"].get<double>() == Approx(1e-2));
    }
    if (j.contains("val_loss")) ++epoch_lines;
  }
  CHECK(step_lines == 320 / 4);
  CHECK(epoch_lines == 40);
}

TEST_CASE("same seed gives bitwise-identical weights, another seed does not", "[trainer]") {
  train::TrainerOptions options;
  options.batch_size = 16;
  options.max_steps = 30;
  Setup a = make_setup(options), b = make_setup(options);
  a.trainer->fit();
  b.trainer->fit();
  std::vector<float> wa = weights(a), wb = weights(b);
  CHECK(std::memcmp(wa.data(), wb.data(), wa.size() * sizeof(float)) == 0);
  options.seed = 1;
  Setup c = make_setup(options);
  c.trainer->fit();
  CHECK(weights(c) != wa);
}

TEST_CASE("20 steps straight equal 10 steps, resume, 10 steps, bitwise", "[trainer][resume]") {
  TempDir tmp("dpm_trainer_resume");
  fs::path dir = tmp.path;
  train::TrainerOptions options;
  options.batch_size = 24;  // 10 batches per epoch: the split falls mid-epoch
  options.ema_decay = 0.9;
  options.lr_schedule = optim::LrScheduleOptions{.kind = optim::LrScheduleKind::warmup_cosine,
                                                 .base_lr = 1e-2,
                                                 .warmup_steps = 5,
                                                 .total_steps = 20};

  options.max_steps = 20;
  Setup straight = make_setup(options);
  straight.trainer->fit();

  options.max_steps = 13;
  options.out_dir = dir / "first";
  Setup first = make_setup(options);
  first.trainer->fit();

  options.max_steps = 20;
  options.out_dir = dir / "second";
  Setup second = make_setup(options, /*init_seed=*/99);  // different init: resume must overwrite
  second.trainer->resume((dir / "first" / "resume.safetensors").string());
  CHECK(second.trainer->step() == 13);
  second.trainer->fit();

  std::vector<float> w1 = weights(straight), w2 = weights(second);
  CHECK(std::memcmp(w1.data(), w2.data(), w1.size() * sizeof(float)) == 0);
  auto buffers1 = straight.model->named_buffers(), buffers2 = second.model->named_buffers();
  for (size_t i = 0; i < buffers1.size(); ++i)
    CHECK(buffers1[i].second.to_vector() == buffers2[i].second.to_vector());
  CHECK(straight.trainer->ema()->shadow().to_vector() ==
        second.trainer->ema()->shadow().to_vector());
}

namespace {
// Three steps of 32 samples, writing into dir.
train::TrainerOptions three_steps_into(const fs::path& dir) {
  train::TrainerOptions options;
  options.batch_size = 32;
  options.max_steps = 3;
  options.out_dir = dir;
  return options;
}
}  // namespace

TEST_CASE("resume rejects files that do not match the run", "[trainer][resume]") {
  TempDir tmp("dpm_trainer_resume_errors");
  fs::path dir = tmp.path;
  train::TrainerOptions options = three_steps_into(dir);
  Setup s = make_setup(options);
  s.trainer->fit();
  options.ema_decay = 0.99;
  Setup with_ema = make_setup(options);
  CHECK_THROWS_WITH(with_ema.trainer->resume((dir / "resume.safetensors").string()),
                    Catch::Contains("resume.safetensors") && Catch::Contains("EMA"));
  CHECK_THROWS_WITH(s.trainer->resume((dir / "best.safetensors").string()),
                    Catch::Contains("not a resume file"));
}

TEST_CASE("resume names the format version, unknown fields and stray tensors",
          "[trainer][resume]") {
  TempDir tmp("dpm_trainer_resume_format");
  fs::path dir = tmp.path;
  const train::TrainerOptions options = three_steps_into(dir);
  Setup s = make_setup(options);
  s.trainer->fit();
  const SafeTensors saved = read_safetensors((dir / "resume.safetensors").string());
  const nlohmann::json fields = nlohmann::json::parse(saved.metadata.at("dpmlab.resume"));
  CHECK(fields.at("version") == train::Trainer::kResumeFormatVersion);
  CHECK(fields.at("best_val_loss").is_number());
  CHECK(fields.at("ema_updates").is_null());

  // The tensors are the trainer's state_dict: the model's under "model.", Adam's moments under
  // "optimizer.".
  std::vector<std::string> names;
  for (const auto& [name, tensor] : saved.tensors) names.push_back(name);
  std::vector<std::string> expected;
  for (const auto& [name, tensor] : s.model->state_dict()) expected.push_back("model." + name);
  expected.insert(expected.end(), {"optimizer.exp_avg", "optimizer.exp_avg_sq"});
  CHECK(names == expected);

  const std::string edited = (dir / "edited.safetensors").string();
  auto resume_error = [&](const nlohmann::json& edited_fields, const NamedTensors& tensors) {
    auto metadata = saved.metadata;
    metadata["dpmlab.resume"] = edited_fields.dump();
    write_safetensors(edited, tensors, metadata);
    Setup fresh = make_setup(options);
    try {
      fresh.trainer->resume(edited);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  nlohmann::json old_version = fields;
  old_version["version"] = 1;
  CHECK_THAT(resume_error(old_version, saved.tensors),
             Catch::Contains(edited) && Catch::Contains("resume format version 1") &&
                 Catch::Contains("expected version 2"));
  nlohmann::json no_version = fields;
  no_version.erase("version");
  CHECK_THAT(resume_error(no_version, saved.tensors),
             Catch::Contains("resume format version missing"));
  nlohmann::json unknown = fields;
  unknown["learning_rate"] = 0.1;
  CHECK_THAT(resume_error(unknown, saved.tensors),
             Catch::Contains("unknown field 'learning_rate'"));
  nlohmann::json missing = fields;
  missing.erase("spike_detectors");
  CHECK_THAT(resume_error(missing, saved.tensors),
             Catch::Contains("field 'spike_detectors' is missing"));
  nlohmann::json bad_step = fields;
  bad_step["step"] = "three";
  CHECK_THAT(resume_error(bad_step, saved.tensors),
             Catch::Contains("field 'step': got \"three\", expected an integer >= 0"));

  NamedTensors stray = saved.tensors;
  stray.emplace_back("callback.counter.count", Tensor::zeros({1}));
  CHECK_THAT(resume_error(fields, stray),
             Catch::Contains("unexpected tensor 'callback.counter.count'"));
  NamedTensors short_of_one(saved.tensors.begin(), saved.tensors.end() - 1);
  CHECK_THAT(resume_error(fields, short_of_one),
             Catch::Contains("tensors under 'optimizer.'") &&
                 Catch::Contains("missing tensor 'exp_avg_sq'"));
  CHECK(resume_error(fields, saved.tensors) == "no error");
}

TEST_CASE("a non-finite loss or gradient stops training and keeps the checkpoint", "[trainer]") {
  TempDir tmp("dpm_trainer_nan");
  fs::path dir = tmp.path;
  train::TrainerOptions options;
  options.batch_size = 32;
  options.max_steps = 100;
  options.out_dir = dir;
  options.resume_every = 2;
  options.progress = false;
  Setup s = make_setup(options);
  // Poison the loss at step 5: the trainer must name the step and not touch the weights.
  int calls = 0;
  auto base = regression_loss(s.model);
  train::Trainer trainer(
      *s.model, *s.optimizer,
      [&](const datasets::Batch& b, Rng& rng) {
        Variable loss = base(b, rng);
        return ++calls == 5 ? loss * std::numeric_limits<float>::quiet_NaN() : loss;
      },
      regression_data(256, 1), Tensor(), options);
  train::TrainResult r = trainer.fit();
  CHECK(r.reason == train::StopReason::non_finite);
  CHECK_THAT(r.message, Catch::Contains("step 5"));
  CHECK(r.steps == 4);
  auto saved = read_safetensors((dir / "resume.safetensors").string());
  CHECK(nlohmann::json::parse(saved.metadata.at("dpmlab.resume"))["step"] == 4);

  // A gradient that overflows in one layer: the message names that parameter.
  Setup g = make_setup(options);
  Variable w0 = g.model->named_parameters()[0].variable;
  train::Trainer grad_trainer(
      *g.model, *g.optimizer,
      [&](const datasets::Batch& b, Rng& rng) {
        // d sqrt(u)/du is infinite at u = 0: a finite loss with a non-finite gradient.
        return regression_loss(g.model)(b, rng) + sum(sqrt(square(w0) * 0.0f));
      },
      regression_data(256, 1), Tensor(), options);
  r = grad_trainer.fit();
  CHECK(r.reason == train::StopReason::non_finite);
  CHECK_THAT(r.message, Catch::Contains("0.weight") && Catch::Contains("step 1"));
}

TEST_CASE("early stopping waits for min_epochs and patience", "[trainer]") {
  // A linear model with lr 0 never changes, so only the first epoch improves.
  Rng rng(3);
  auto model = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Layer>>{std::make_shared<nn::Linear>(1, 1, rng)});
  optim::Adam adam(model->arena(), optim::AdamOptions{.lr = 0});
  train::TrainerOptions options;
  options.batch_size = 64;
  options.max_epochs = 50;
  options.min_epochs = 6;
  options.patience = 2;
  options.progress = false;
  train::Trainer trainer(*model, adam, regression_loss(model), regression_data(256, 1),
                         regression_data(64, 2), options);
  train::TrainResult r = trainer.fit();
  CHECK(r.reason == train::StopReason::early_stopping);
  CHECK(r.epochs == 6);
  CHECK(r.best_epoch == 1);

  options.patience = 0;  // off: runs to max_epochs
  options.max_epochs = 8;
  train::Trainer no_stop(*model, adam, regression_loss(model), regression_data(256, 1),
                         regression_data(64, 2), options);
  CHECK(no_stop.fit().reason == train::StopReason::max_epochs);
}

namespace {
// Counts steps, adds a field to metrics lines, keeps state across resume, and can raise SIGINT.
struct CountingCallback : train::Callback {
  int64_t raise_at = -1;
  Tensor counter = Tensor::zeros({1});
  std::string name() const override { return "counter"; }
  void on_step(const train::StepInfo& info, nlohmann::json& record) override {
    counter.data()[0] += 1;
    if (info.logging) record["counted"] = counter.data()[0];
    if (info.step == raise_at) std::raise(SIGINT);
  }
  NamedTensors state_dict() const override { return {{"count", counter}}; }
  void load_state_dict(const NamedTensors& t) override {
    REQUIRE(t.size() == 1);
    counter.copy_(t[0].second);
  }
};
}  // namespace

TEST_CASE("SIGINT saves a resume file and stops cleanly, callbacks persist", "[trainer][resume]") {
  TempDir tmp("dpm_trainer_sigint");
  fs::path dir = tmp.path;
  train::TrainerOptions options;
  options.batch_size = 32;
  options.max_steps = 12;
  options.log_every = 3;
  Setup straight = make_setup(options);
  straight.trainer->fit();

  options.out_dir = dir;
  Setup s = make_setup(options);
  auto cb = std::make_shared<CountingCallback>();
  cb->raise_at = 7;
  s.trainer->add_callback(cb);
  train::TrainResult r = s.trainer->fit();
  CHECK(r.reason == train::StopReason::interrupted);
  CHECK(r.steps == 7);

  Setup resumed = make_setup(options, 42);
  auto cb2 = std::make_shared<CountingCallback>();
  resumed.trainer->add_callback(cb2);
  resumed.trainer->resume((dir / "resume.safetensors").string());
  CHECK(cb2->counter.data()[0] == 7);
  resumed.trainer->fit();
  CHECK(cb2->counter.data()[0] == 12);
  CHECK(weights(resumed) == weights(straight));

  std::ifstream metrics(dir / "metrics.jsonl");
  bool saw_counted = false;
  for (std::string line; std::getline(metrics, line);)
    saw_counted = saw_counted || nlohmann::json::parse(line).contains("counted");
  CHECK(saw_counted);
}
