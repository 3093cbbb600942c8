// The cost of spectral tracking during training: one training step (forward, eps-prediction MSE,
// backward, Adam) of the residual MLP (batch 128, dim 64, width 512, depth 4) and of the paper's
// 1-D U-Net (batch 128, length 64), without and with a SpectralTracker scanning every 50 steps
// (2 warm power-iteration updates per layer, BatchNorm/FiLM factors over 16 steps t, the AutoLip
// bound). Each with-tracker run is exactly 100 steps, so it holds exactly 2 scans: its mean is
// the amortised per-step cost. BM_Scan times one warm scan alone; overhead = scan / (50 * step).
// Arguments: tracker on (1) or off (0).
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/rng.hpp"
#include "nn/lipschitz/spectral_scan.hpp"
#include "nn/mlp.hpp"
#include "nn/optim/adam.hpp"
#include "nn/unet.hpp"
#include "trainers/spectral_tracker.hpp"

namespace {

constexpr int64_t kBatch = 128;
constexpr int64_t kEvery = 50;
constexpr int64_t kSteps = 2 * kEvery;

// A model, its optimizer and one fixed batch; step() is one training step.
struct Training {
  std::shared_ptr<dpm::nn::NoiseModel> model;
  std::unique_ptr<dpm::optim::Adam> optimizer;
  dpm::Tensor x0, noise;
  std::vector<int64_t> t;

  Training(std::shared_ptr<dpm::nn::NoiseModel> m, const dpm::Shape& batch_shape)
      : model(std::move(m)) {
    optimizer =
        std::make_unique<dpm::optim::Adam>(model->arena(), dpm::optim::AdamOptions{.lr = 1e-4});
    dpm::Rng rng(1);
    x0 = dpm::randn(batch_shape, rng);
    noise = dpm::randn(batch_shape, rng);
    for (int64_t i = 0; i < kBatch; ++i) t.push_back(rng.integer(int64_t{0}, int64_t{299}));
  }

  void step() {
    optimizer->zero_grad();
    dpm::Variable xt = dpm::Variable(x0) * 0.8f + dpm::Variable(noise) * 0.6f;
    dpm::Variable loss = dpm::mse_loss(model->forward(xt, t), dpm::Variable(noise));
    loss.backward();
    optimizer->step();
  }
};

Training make_training(bool unet) {
  dpm::Rng rng(0);
  if (unet)
    return Training(std::make_shared<dpm::nn::UNet>(dpm::nn::UNetOptions::paper_1d(), rng),
                    {kBatch, 1, 64});
  return Training(std::make_shared<dpm::nn::ResidualMLP>(dpm::nn::ResidualMLPOptions{}, rng),
                  {kBatch, 64});
}

// A tracker whose vectors are already converged (the one cold scan is not part of training's
// steady state).
std::shared_ptr<dpm::train::SpectralTracker> warm_tracker(Training& training) {
  auto tracker = std::make_shared<dpm::train::SpectralTracker>(
      *training.model, dpm::train::SpectralTrackerOptions{.every = kEvery});
  training.step();  // every conv records its input size
  tracker->scan(0);
  return tracker;
}

void run_steps(benchmark::State& state, bool unet) {
  Training training = make_training(unet);
  std::shared_ptr<dpm::train::SpectralTracker> tracker;
  if (state.range(0)) tracker = warm_tracker(training);
  training.step();  // warm-up
  int64_t step = 0;
  for (auto _ : state) {
    training.step();
    ++step;
    if (tracker) {
      nlohmann::json record;
      tracker->on_step({.step = step, .logging = step % kEvery == 0}, record);
      benchmark::DoNotOptimize(record);
    }
  }
  state.counters["scans"] = static_cast<double>(tracker ? step / kEvery : 0);
}

void run_scan(benchmark::State& state, bool unet) {
  Training training = make_training(unet);
  std::shared_ptr<dpm::train::SpectralTracker> tracker = warm_tracker(training);
  int64_t step = 0;
  for (auto _ : state) benchmark::DoNotOptimize(tracker->scan(++step).bound);
  state.counters["layers"] = static_cast<double>(tracker->last_scan()->layers.size());
}

void BM_TrainStepMLP(benchmark::State& state) {
  run_steps(state, false);
}
void BM_TrainStepUNet1d(benchmark::State& state) {
  run_steps(state, true);
}
void BM_ScanMLP(benchmark::State& state) {
  run_scan(state, false);
}
void BM_ScanUNet1d(benchmark::State& state) {
  run_scan(state, true);
}

}  // namespace

BENCHMARK(BM_TrainStepMLP)->Arg(0)->Arg(1)->Iterations(kSteps)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStepUNet1d)->Arg(0)->Arg(1)->Iterations(kSteps)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ScanMLP)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ScanUNet1d)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
