// GEMM through the engine at the residual MLP's shapes, beside raw cblas_sgemm at a large square
// size (the machine's sgemm peak, measured in the same run).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "autograd/kernels/gemm.hpp"
#include "autograd/ops/linalg.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"

namespace {

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

// Raw OpenBLAS sgemm, n x n x n: the roofline the engine is measured against.
void BM_RawSgemm(benchmark::State& state) {
  dpm::set_num_threads(static_cast<int>(state.range(1)));
  const int n = static_cast<int>(state.range(0));
  dpm::Rng rng(1);
  dpm::Tensor a = dpm::randn({n, n}, rng), b = dpm::randn({n, n}, rng),
              c = dpm::Tensor::zeros({n, n});
  for (auto _ : state)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  set_flops(state, 2.0 * n * n * n);
}
BENCHMARK(BM_RawSgemm)->Args({1024, 1})->Args({1024, 2})->UseRealTime();

// linear(x [B, in], W [out, in]) forward and backward through the tape, at MLP shapes.
void BM_LinearForwardBackward(benchmark::State& state) {
  dpm::set_num_threads(static_cast<int>(state.range(3)));
  const int64_t batch = state.range(0), in = state.range(1), out = state.range(2);
  dpm::Rng rng(2);
  dpm::Variable x(dpm::randn({batch, in}, rng), true);
  dpm::Variable w(dpm::randn({out, in}, rng), true);
  dpm::Variable b(dpm::randn({out}, rng), true);
  dpm::Tensor seed = dpm::randn({batch, out}, rng);
  for (auto _ : state) {
    dpm::Variable y = dpm::linear(x, w, b);
    y.backward(seed);
    benchmark::DoNotOptimize(w.grad().data());
  }
  set_flops(state, 3 * 2.0 * static_cast<double>(batch * in * out));
}
BENCHMARK(BM_LinearForwardBackward)
    ->Args({128, 512, 512, 1})
    ->Args({128, 512, 512, 2})
    ->Args({128, 128, 512, 2})
    ->Args({128, 64, 512, 2})
    ->Args({128, 512, 64, 2})
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
