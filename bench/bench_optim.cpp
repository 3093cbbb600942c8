// The per-step optimizer work of training, over an arena the size of the residual MLP
// (~2.5M parameters): an AdamW step and an EMA update. Both are memory-bound streams, so the
// figure of merit is GB/s of arena traffic (AdamW reads param, grad, exp_avg, exp_avg_sq and
// writes three of them; EMA reads shadow and param and writes shadow).
#include <benchmark/benchmark.h>

#include <string>

#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "nn/arena.hpp"
#include "nn/module.hpp"
#include "nn/optim/adam.hpp"
#include "nn/optim/ema.hpp"

namespace {

// 10 blocks of weight [500, 500] + bias [500]: 2,505,000 parameters, alternating decay flags.
class MlpSizedModel : public dpm::nn::Module {
 public:
  MlpSizedModel() : Module("MlpSizedModel") {
    dpm::Rng rng(3);
    for (int l = 0; l < 10; ++l) {
      register_parameter("weight" + std::to_string(l), dpm::randn({500, 500}, rng, 0, 0.05f));
      register_parameter("bias" + std::to_string(l), dpm::Tensor::zeros({500}), false);
    }
  }
};

void set_bandwidth(benchmark::State& state, double bytes_per_iteration) {
  state.counters["GB/s"] =
      benchmark::Counter(bytes_per_iteration / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_AdamWStep(benchmark::State& state) {
  dpm::set_num_threads(static_cast<int>(state.range(0)));
  MlpSizedModel model;
  dpm::nn::ParameterArena& arena = model.arena();
  dpm::Rng rng(4);
  rng.fill_normal(arena.grads().data(), arena.numel());
  dpm::optim::AdamW adamw(arena, {.lr = 1e-4, .weight_decay = 1e-2});
  for (auto _ : state) {
    adamw.step();
    benchmark::ClobberMemory();
  }
  set_bandwidth(state, 7.0 * sizeof(float) * static_cast<double>(arena.numel()));
}
BENCHMARK(BM_AdamWStep)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_EmaUpdate(benchmark::State& state) {
  dpm::set_num_threads(static_cast<int>(state.range(0)));
  MlpSizedModel model;
  dpm::optim::Ema ema(model.arena());
  for (auto _ : state) {
    ema.update(0.999);
    benchmark::ClobberMemory();
  }
  set_bandwidth(state, 3.0 * sizeof(float) * static_cast<double>(model.arena().numel()));
}
BENCHMARK(BM_EmaUpdate)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
