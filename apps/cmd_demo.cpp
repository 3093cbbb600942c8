// dpmlab demo: trains a small regression MLP (y = sin(3x)) through the tape, with the trainer,
// and prints the loss falling. A smoke test of the whole stack in a couple of seconds.
#include <cmath>
#include <cstdio>
#include <memory>

#include "apps/commands.hpp"
#include "autograd/ops.hpp"
#include "autograd/threading.hpp"
#include "nn/activation.hpp"
#include "nn/linear.hpp"
#include "nn/optim/adam.hpp"
#include "nn/sequential.hpp"
#include "trainers/trainer.hpp"

namespace dpm::cli {
namespace {

struct DemoArgs {
  int64_t epochs = 30;
  int64_t samples = 4096;
  int64_t width = 64;
  uint64_t seed = 0;
  int threads = 0;
};

Tensor sine_data(int64_t n, Rng& rng) {
  Tensor d = Tensor::empty({n, 2});
  for (int64_t i = 0; i < n; ++i) {
    double x = rng.uniform(-1, 1);
    d.at({i, 0}) = static_cast<float>(x);
    d.at({i, 1}) = static_cast<float>(std::sin(3 * x));
  }
  return d;
}

void run_demo(const DemoArgs& args) {
  set_num_threads(args.threads);
  Rng rng(args.seed);
  Rng init = rng.split(0), data = rng.split(1);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(1, args.width, init), std::make_shared<nn::SiLU>(),
      std::make_shared<nn::Linear>(args.width, args.width, init), std::make_shared<nn::SiLU>(),
      std::make_shared<nn::Linear>(args.width, 1, init)});
  optim::Adam adam(model->arena(), optim::AdamOptions{.lr = 3e-3});

  train::TrainerOptions options;
  options.batch_size = 128;
  options.max_epochs = args.epochs;
  options.seed = args.seed;
  options.progress = false;  // one line per epoch below instead
  train::LossFn loss = [&](const datasets::Batch& batch, Rng&) {
    Variable xy(batch.data);
    return mse_loss(model->forward(slice(xy, 1, 0, 1)), slice(xy, 1, 1, 2));
  };
  train::Trainer trainer(*model, adam, loss, sine_data(args.samples, data),
                         sine_data(args.samples / 4, data), options);

  // Prints the epoch's losses as they fall.
  struct EpochPrinter : train::Callback {
    std::string name() const override { return "printer"; }
    void on_epoch(const train::EpochInfo& info, nlohmann::json&) override {
      std::printf("epoch %3lld  train mse %.6f  validation mse %.6f%s\n",
                  static_cast<long long>(info.epoch), info.train_loss, info.val_loss.value_or(NAN),
                  info.improved ? "  *" : "");
      std::fflush(stdout);
    }
  };
  trainer.add_callback(std::make_shared<EpochPrinter>());
  std::printf("dpmlab demo: MLP 1-%lld-%lld-1 (%lld parameters) learns y = sin(3x), %d threads\n",
              static_cast<long long>(args.width), static_cast<long long>(args.width),
              static_cast<long long>(model->parameter_count()), num_threads());
  train::TrainResult r = trainer.fit();
  std::printf("done: %lld steps in %.2f s, best validation mse %.6f at epoch %lld\n",
              static_cast<long long>(r.steps), r.seconds, r.best_val_loss.value_or(NAN),
              static_cast<long long>(r.best_epoch));
}

}  // namespace

void register_demo_command(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* demo = app.add_subcommand(
      "demo",
      "Train a small MLP on y = sin(3x) through the tape and print the loss falling.\n"
      "Example: dpmlab demo --epochs 20");
  demo->add_option("--epochs", args->epochs, "training epochs")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  demo->add_option("--samples", args->samples, "training samples")
      ->check(CLI::Range(int64_t{256}, int64_t{10000000}))
      ->capture_default_str();
  demo->add_option("--width", args->width, "hidden width")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->capture_default_str();
  demo->add_option("--seed", args->seed, "random seed")->capture_default_str();
  demo->add_option("--threads", args->threads, "threads (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  demo->callback([args] { run_demo(*args); });
}

}  // namespace dpm::cli
