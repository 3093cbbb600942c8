// Conv kernels at the paper U-Net's shapes: batch 128, k = 3, padding 1, channels c -> c.
// 1-D: (16, L 64), (32, L 32), (64, L 16), (128, L 8); 2-D: (16, 28x28), (32, 14x14), (64, 7x7).
// Arguments: channels, spatial size (length or side), threads. FLOPs: forward 2 B Co Ci K OH OW,
// backward (data + weight gradients) twice that.
#include <benchmark/benchmark.h>

#include "autograd/kernels/conv.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"

namespace {

constexpr int64_t kBatch = 128;

dpm::ConvGeometry unet_geometry(const benchmark::State& state, bool two_d) {
  dpm::ConvGeometry g;
  g.batch = kBatch;
  g.in_channels = g.out_channels = state.range(0);
  g.in_w = state.range(1);
  g.kernel_w = 3;
  g.pad_w = 1;
  if (two_d) {
    g.in_h = state.range(1);
    g.kernel_h = 3;
    g.pad_h = 1;
  }
  g.validate("bench_conv");
  return g;
}

double forward_flops(const dpm::ConvGeometry& g) {
  return 2.0 * static_cast<double>(g.batch * g.out_channels * g.in_channels * g.kernel_h *
                                   g.kernel_w * g.out_h() * g.out_w());
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

// The operands of one conv: input, weight, bias, and an output / output-gradient buffer.
struct ConvData {
  dpm::Tensor x, w, b, out, dx, dw, db;
  explicit ConvData(const dpm::ConvGeometry& g) {
    dpm::Rng rng(3);
    x = dpm::randn({g.batch, g.in_channels, g.in_h, g.in_w}, rng);
    w = dpm::randn({g.out_channels, g.in_channels, g.kernel_h, g.kernel_w}, rng, 0.0f, 0.1f);
    b = dpm::randn({g.out_channels}, rng);
    out = dpm::randn({g.batch, g.out_channels, g.out_h(), g.out_w()}, rng);
    dx = dpm::Tensor::zeros(x.shape());
    dw = dpm::Tensor::zeros(w.shape());
    db = dpm::Tensor::zeros(b.shape());
  }
};

void run_forward(benchmark::State& state, bool two_d) {
  dpm::set_num_threads(static_cast<int>(state.range(2)));
  const dpm::ConvGeometry g = unet_geometry(state, two_d);
  ConvData d(g);
  for (auto _ : state) {
    dpm::conv2d_forward(d.out.data(), d.x.data(), d.w.data(), d.b.data(), g);
    benchmark::DoNotOptimize(d.out.data());
  }
  set_flops(state, forward_flops(g));
}

void run_backward(benchmark::State& state, bool two_d) {
  dpm::set_num_threads(static_cast<int>(state.range(2)));
  const dpm::ConvGeometry g = unet_geometry(state, two_d);
  ConvData d(g);
  for (auto _ : state) {
    dpm::conv2d_backward(d.dx.data(), d.dw.data(), d.db.data(), d.out.data(), d.x.data(),
                         d.w.data(), g);
    benchmark::DoNotOptimize(d.dw.data());
  }
  set_flops(state, 2.0 * forward_flops(g));
}

void BM_Conv1dForward(benchmark::State& state) {
  run_forward(state, false);
}
void BM_Conv1dBackward(benchmark::State& state) {
  run_backward(state, false);
}
void BM_Conv2dForward(benchmark::State& state) {
  run_forward(state, true);
}
void BM_Conv2dBackward(benchmark::State& state) {
  run_backward(state, true);
}

void unet_1d(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (auto [channels, length] : {std::pair{16, 64}, {32, 32}, {64, 16}, {128, 8}})
      b->Args({channels, length, threads});
  b->UseRealTime();
}

void unet_2d(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (auto [channels, side] : {std::pair{16, 28}, {32, 14}, {64, 7}})
      b->Args({channels, side, threads});
  b->UseRealTime();
}

BENCHMARK(BM_Conv1dForward)->Apply(unet_1d);
BENCHMARK(BM_Conv1dBackward)->Apply(unet_1d);
BENCHMARK(BM_Conv2dForward)->Apply(unet_2d);
BENCHMARK(BM_Conv2dBackward)->Apply(unet_2d);

}  // namespace

BENCHMARK_MAIN();
