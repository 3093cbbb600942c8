// dpmlab bench: whole-model throughput. Training steps exactly as train_dpm runs them (zero grad,
// the L_simple loss at uniform t, backward, Adam) on random data, eval-mode inference batches,
// analytic FLOPs (apps/flop_count.hpp) against the raw OpenBLAS sgemm rate measured in the same
// run at the same thread count, peak RSS; optionally the SpectralTracker's overhead; or (with
// --denoiser) the DM denoiser's throughput; or (with --em) the EM iterations of `gmm fit` against
// the dgemm rate. A table on stdout, the same figures with --json.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/flag_config.hpp"
#include "apps/flop_count.hpp"
#include "autograd/kernels/gemm.hpp"
#include "autograd/ops/arith.hpp"
#include "autograd/threading.hpp"
#include "datasets/dense.hpp"
#include "datasets/gmm.hpp"
#include "datasets/gmm_fit.hpp"
#include "diffusion/denoiser.hpp"
#include "diffusion/objective.hpp"
#include "diffusion/prediction.hpp"
#include "distributed/communicator.hpp"
#include "nn/optim/adam.hpp"
#include "trainers/dpm_training.hpp"
#include "trainers/jacobian_tracker.hpp"
#include "trainers/spectral_tracker.hpp"

namespace dpm::cli {
namespace {

struct BenchArgs {
  std::string model;
  int64_t batch = 128, steps = 20, warmup = 3, track_every = 0, track_jacobian = 0;
  std::vector<int64_t> inference_batches;  // besides --batch
  int64_t em_components = 128, em_dim = 784;
  int threads = 2;
  std::string json_file;
  bool denoiser = false, em = false;
  uint64_t seed = 0;
};

using Clock = std::chrono::steady_clock;

double elapsed_ms(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double time_ms(const std::function<void()>& fn) {
  const Clock::time_point start = Clock::now();
  fn();
  return elapsed_ms(start);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double minimum(const std::vector<double>& values) {
  return *std::min_element(values.begin(), values.end());
}

// Times `repeats` calls of fn after `warmup` untimed ones.
std::vector<double> timings(int64_t warmup, int64_t repeats, const std::function<void()>& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int64_t i = 0; i < repeats; ++i) ms.push_back(time_ms(fn));
  return ms;
}

// The raw OpenBLAS rate at the current thread count: 1024^3 sgemm, best of 5, in GFLOP/s.
double sgemm_gflops() {
  constexpr int64_t n = 1024;
  std::vector<float> a(n * n), b(n * n), c(n * n);
  Rng rng(7);
  rng.fill_normal(a.data(), n * n);
  rng.fill_normal(b.data(), n * n);
  const std::vector<double> ms = timings(
      1, 5, [&] { sgemm(false, false, n, n, n, 1.0f, a.data(), b.data(), 0.0f, c.data()); });
  return 2.0 * n * n * n / (minimum(ms) * 1e6);
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports kilobytes
}

double load_average() {
  double one_minute = 0;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &one_minute) != 1) one_minute = 0;
    std::fclose(f);
  }
  return one_minute;
}

// The default configs the CLI uses elsewhere (dpmlab model / train): MLP N = 64, U-Net 1-D on
// [1, 64], U-Net 2-D on [1, 28, 28]. Returns the model and its per-sample shape.
std::pair<std::shared_ptr<nn::NoiseModel>, Shape> build_model(const std::string& name,
                                                              uint64_t seed) {
  Rng rng(seed);
  if (name == "mlp") return {nn::make_noise_model({{"arch", "mlp"}, {"dim", 64}}, rng), Shape{64}};
  const bool one_d = name == "unet1d";
  return {nn::make_noise_model({{"arch", name}, {"data_channels", 1}}, rng),
          one_d ? Shape{1, 64} : Shape{1, 28, 28}};
}

Tensor random_batch(int64_t batch, const Shape& sample_shape, Rng& rng) {
  std::vector<int64_t> dims = sample_shape.vec();
  dims.insert(dims.begin(), batch);
  Tensor x = Tensor::empty(Shape(dims));
  rng.fill_normal(x.data(), x.numel());
  return x;
}

void print_row(const char* what, double value, const char* unit) {
  std::printf("  %-30s %12.3f %s\n", what, value, unit);
}

// Training steps with and without a tracker that scans every `every` steps in alternating blocks
// of `every` steps (the "with" block ends on a multiple of `every`, so it holds exactly one
// scan), order swapped every pair so drift cancels. Also times the scans themselves.
nlohmann::json tracker_overhead(train::Callback& tracker, int64_t every, int64_t pairs,
                                const std::function<void()>& train_step) {
  double with_ms = 0, without_ms = 0;
  std::vector<double> scan_ms, pair_ratios;
  int64_t step = 0;
  for (int64_t pair = 0; pair < pairs; ++pair) {
    double block_ms[2] = {0, 0};  // [without, with]
    for (int half = 0; half < 2; ++half) {
      const bool tracked = (half == 0) == (pair % 2 == 1);
      const Clock::time_point start = Clock::now();
      for (int64_t i = 0; i < every; ++i) {
        train_step();
        if (!tracked) continue;
        nlohmann::json record;
        const double ms = time_ms([&] { tracker.on_step({.step = ++step}, record); });
        if (step % every == 0) scan_ms.push_back(ms);
      }
      block_ms[tracked] = elapsed_ms(start);
    }
    without_ms += block_ms[0];
    with_ms += block_ms[1];
    pair_ratios.push_back(block_ms[1] / block_ms[0]);
  }
  const double step_ms = without_ms / static_cast<double>(pairs * every);
  return {{"every", every},
          {"pairs", pairs},
          {"overhead_ratio", with_ms / without_ms},
          {"pair_ratio_median", median(pair_ratios)},
          {"scan_ms_median", median(scan_ms)},
          {"scan_overhead_ratio", 1.0 + median(scan_ms) / (every * step_ms)}};
}

// The trackers' overheads the flags ask for: the spectral tracker (--track-every) and the
// Jacobian tracker with `dpmlab train --track-jacobian`'s defaults on probes of N(0, I).
void add_tracker_overheads(const BenchArgs& args, const std::shared_ptr<nn::NoiseModel>& model,
                           const diffusion::Schedule& schedule, const Shape& sample_shape,
                           Rng& data_rng, const std::function<void()>& train_step,
                           nlohmann::json& out) {
  auto pairs_for = [&](int64_t every) {
    return std::max<int64_t>(2, (args.steps + every - 1) / every);
  };
  if (args.track_every > 0) {
    train::SpectralTracker tracker(*model, {.every = args.track_every});
    out["tracker"] =
        tracker_overhead(tracker, args.track_every, pairs_for(args.track_every), train_step);
  }
  if (args.track_jacobian > 0) {
    train::JacobianTrackerOptions options;
    options.every = args.track_jacobian;
    train::JacobianTracker tracker(model, schedule, diffusion::PredictionTarget::eps,
                                   random_batch(options.probes, sample_shape, data_rng), options);
    out["jacobian_tracker"] =
        tracker_overhead(tracker, args.track_jacobian, pairs_for(args.track_jacobian), train_step);
  }
}

// Eval-mode forwards of x [B, ...] at steps 0, 1, ... (mod T), one warm-up then `repeats` timed.
std::vector<double> eval_inference_ms(nn::NoiseModel& model, const Tensor& x, int64_t T,
                                      int64_t repeats) {
  model.eval();
  NoGradGuard no_grad;
  const Variable input(x);
  std::vector<int64_t> t(static_cast<size_t>(x.size(0)));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int64_t>(i) % T;
  std::vector<double> ms = timings(1, repeats, [&] { model.forward(input, t).data(); });
  model.train();
  return ms;
}

struct InferenceFigures {
  std::vector<double> training_batch_ms;  // per timed forward at --batch
  nlohmann::json other_batches;           // [{batch, ms_median, ms_min}] per --inference-batch
};

// Eval inference at the training batch x, then at each --inference-batch size after the
// allocator's idle blocks are returned (other sizes cannot reuse the training step's).
InferenceFigures time_inference(nn::NoiseModel& model, const Tensor& x, const Shape& sample_shape,
                                int64_t T, const BenchArgs& args, Rng& rng) {
  const int64_t repeats = std::max<int64_t>(args.steps, 3);
  InferenceFigures figures{eval_inference_ms(model, x, T, repeats), nlohmann::json::array()};
  if (!args.inference_batches.empty()) empty_storage_cache();
  for (const int64_t size : args.inference_batches) {
    const std::vector<double> ms =
        eval_inference_ms(model, random_batch(size, sample_shape, rng), T, repeats);
    figures.other_batches.push_back(
        {{"batch", size}, {"ms_median", median(ms)}, {"ms_min", minimum(ms)}});
  }
  return figures;
}

nlohmann::json bench_training(const BenchArgs& args) {
  auto [model, sample_shape] = build_model(args.model, args.seed);
  const diffusion::Schedule schedule = diffusion::Schedule::paper_linear(300);
  auto objective =
      std::make_shared<diffusion::Objective>(model, schedule, diffusion::ObjectiveOptions{});
  const auto loss_fn = diffusion::make_loss_fn(objective);
  const train::OptimizerConfig defaults;  // train_dpm's Adam
  optim::Adam adam(model->arena(), {defaults.lr, {defaults.beta1, defaults.beta2}, defaults.eps});

  Rng data_rng(args.seed + 1), noise_rng(args.seed + 2);
  datasets::Batch batch{random_batch(args.batch, sample_shape, data_rng), {}, {}, {}};
  for (int64_t i = 0; i < args.batch; ++i) batch.indices.push_back(i);
  // Under mpirun, data-parallel as the Trainer is: this rank's shard of the batch, and the
  // gradient arena all-reduced (timed on its own).
  dist::Communicator& world = dist::Communicator::world();
  const dist::Shard shard = dist::shard_of(args.batch, world.rank(), world.size());
  if (world.distributed()) batch.shard = datasets::RowRange{shard.begin, shard.end};
  const float share = static_cast<float>(shard.size()) / static_cast<float>(args.batch);
  std::vector<double> allreduce_ms;
  // As Trainer::run_step: zero grad, loss (read, as the trainer checks it), backward, step.
  double last_loss = 0;
  auto train_step = [&] {
    adam.zero_grad();
    Variable loss = loss_fn(batch, noise_rng);
    last_loss = loss.item();
    if (world.distributed()) loss = loss * share;
    loss.backward();
    if (world.distributed()) {
      Tensor& grads = adam.arena().grads();
      allreduce_ms.push_back(time_ms([&] { world.allreduce_sum(grads.data(), grads.numel()); }));
    }
    adam.step();
  };

  const std::vector<double> step_ms = timings(args.warmup, args.steps, train_step);
  if (!allreduce_ms.empty())  // the timed steps' only
    allreduce_ms.erase(allreduce_ms.begin(), allreduce_ms.end() - args.steps);
  if (!std::isfinite(last_loss))
    throw std::runtime_error("bench: the loss became " + std::to_string(last_loss));

  const InferenceFigures inference =
      time_inference(*model, batch.data, sample_shape, schedule.T(), args, data_rng);

  std::vector<int64_t> input_dims = sample_shape.vec();
  input_dims.insert(input_dims.begin(), args.batch);
  const FlopCount flops = count_flops(*model, Shape(input_dims));
  const double sgemm = sgemm_gflops();
  const double step_median = median(step_ms);
  const double achieved = static_cast<double>(flops.training_step()) / (step_median * 1e6);
  nlohmann::json out = {
      {"mode", "train"},
      {"model", args.model},
      {"config", model->config()},
      {"parameters", model->parameter_count()},
      {"batch", args.batch},
      {"threads", args.threads},
      {"steps", args.steps},
      {"warmup", args.warmup},
      {"step_ms_median", step_median},
      {"step_ms_min", minimum(step_ms)},
      {"step_ms", step_ms},
      {"inference_ms_median", median(inference.training_batch_ms)},
      {"inference_ms_min", minimum(inference.training_batch_ms)},
      {"inference_batches", inference.other_batches},
      {"forward_flops", flops.forward},
      {"step_flops", flops.training_step()},
      {"achieved_gflops", achieved},
      {"sgemm_gflops", sgemm},
      {"percent_of_sgemm", 100.0 * achieved / sgemm},
      {"roofline_step_ms", static_cast<double>(flops.training_step()) / (sgemm * 1e6)},
      {"ranks", world.size()},
      {"samples_per_s", static_cast<double>(args.batch) / (step_median / 1000)},
      {"gradient_bytes", model->arena().grads().numel() * 4},
      {"final_loss", last_loss}};
  if (!allreduce_ms.empty()) out["allreduce_ms_median"] = median(allreduce_ms);
  add_tracker_overheads(args, model, schedule, sample_shape, data_rng, train_step, out);
  return out;
}

void print_training(const nlohmann::json& r) {
  std::printf("dpmlab bench: %s, batch %lld, %d threads, %lld steps after %lld warm-up\n",
              r["model"].get<std::string>().c_str(), r["batch"].get<long long>(),
              r["threads"].get<int>(), r["steps"].get<long long>(), r["warmup"].get<long long>());
  print_row("training step (median)", r["step_ms_median"], "ms");
  print_row("training step (min)", r["step_ms_min"], "ms");
  print_row("inference batch, eval (median)", r["inference_ms_median"], "ms");
  for (const nlohmann::json& other : r["inference_batches"]) {
    const std::string what =
        "inference batch " + std::to_string(other["batch"].get<long long>()) + " (median)";
    print_row(what.c_str(), other["ms_median"], "ms");
  }
  print_row("FLOPs per step", r["step_flops"].get<double>() / 1e9, "GFLOP");
  print_row("achieved", r["achieved_gflops"], "GFLOP/s");
  print_row("raw sgemm 1024^3", r["sgemm_gflops"], "GFLOP/s");
  print_row("achieved / sgemm", r["percent_of_sgemm"], "%");
  print_row("roofline step", r["roofline_step_ms"], "ms");
  print_row("samples per second", r["samples_per_s"], "");
  if (r.contains("allreduce_ms_median")) {
    print_row("ranks (MPI, data-parallel)", r["ranks"], "");
    print_row("gradient all-reduce (median)", r["allreduce_ms_median"], "ms");
  }
  for (const char* key : {"tracker", "jacobian_tracker"}) {
    if (!r.contains(key)) continue;
    const nlohmann::json& t = r[key];
    const std::string name = std::string(key == std::string("tracker") ? "spectral" : "Jacobian") +
                             " tracker",
                      every = "k = " + std::to_string(t["every"].get<long long>());
    print_row((name + " overhead, " + every).c_str(), t["overhead_ratio"], "x (paired blocks)");
    print_row((name + " scan (median)").c_str(), t["scan_ms_median"], "ms");
    print_row((name + " overhead from scans").c_str(), t["scan_overhead_ratio"], "x");
  }
}

// The DM denoiser of the paper (mean forwarding, T = 300, 0 dB) over a U-Net 1-D in eval mode.
nlohmann::json bench_denoiser(const BenchArgs& args) {
  auto [model, sample_shape] = build_model("unet1d", args.seed);
  const diffusion::Schedule schedule = diffusion::Schedule::paper_linear(300);
  diffusion::NetworkPredictor predictor(model, schedule, {.max_batch = args.batch});
  Rng data_rng(args.seed + 1), noise_rng(args.seed + 2);
  // Under mpirun each rank denoises its shard of the batch and the estimates are gathered.
  dist::Communicator& world = dist::Communicator::world();
  const dist::Shard shard = dist::shard_of(args.batch, world.rank(), world.size());
  const diffusion::DoubleBatch y = diffusion::DoubleBatch::from_tensor(
      random_batch(args.batch, sample_shape, data_rng).narrow(0, shard.begin, shard.size()));
  const double snr_db = 0.0;
  const diffusion::Estimator estimator;  // mean forwarding from t_hat
  diffusion::Denoised last;
  const std::vector<double> ms = timings(args.warmup, args.steps, [&] {
    last = diffusion::denoise(estimator, y, std::pow(10.0, snr_db / 10), predictor, schedule,
                              noise_rng);
    world.allgather(last.x_hat.values);
  });
  const double batch_ms = median(ms);
  return {{"mode", "denoiser"},
          {"model", "unet1d"},
          {"estimator", estimator.name()},
          {"T", schedule.T()},
          {"snr_db", snr_db},
          {"batch", args.batch},
          {"threads", args.threads},
          {"ranks", world.size()},
          {"runs", args.steps},
          {"warmup", args.warmup},
          {"start_step", last.start_step},
          {"evaluations", last.evaluations},
          {"batch_ms_median", batch_ms},
          {"batch_ms_min", minimum(ms)},
          {"evaluation_ms", batch_ms / static_cast<double>(last.evaluations)},
          {"samples_per_s", static_cast<double>(args.batch) / (batch_ms / 1000)},
          {"sgemm_gflops", sgemm_gflops()}};
}

void print_denoiser(const nlohmann::json& r) {
  std::printf("dpmlab bench --denoiser: %s on unet1d, T = %lld, %g dB, batch %lld, %d threads\n",
              r["estimator"].get<std::string>().c_str(), r["T"].get<long long>(),
              r["snr_db"].get<double>(), r["batch"].get<long long>(), r["threads"].get<int>());
  print_row("network evaluations per batch", r["evaluations"], "");
  print_row("denoised batch (median)", r["batch_ms_median"], "ms");
  print_row("per network evaluation", r["evaluation_ms"], "ms");
  print_row("throughput", r["samples_per_s"], "samples/s");
  print_row("raw sgemm 1024^3", r["sgemm_gflops"], "GFLOP/s");
}

// EM iterations of `dpmlab gmm fit` (by default at the image experiment's size: K = 128 full
// covariances, D = 784) on args.batch rows drawn from a random GMM of that size, started from
// that GMM; the rate counts the work gmm fit counts (GmmFitProgress::flops) over each
// iteration's wall time.
nlohmann::json bench_em(const BenchArgs& args) {
  constexpr int64_t kDgemmSize = 1024;
  Rng rng(args.seed);
  const datasets::Gmm truth = datasets::make_random_gmm(rng, args.em_dim, args.em_components);
  const Tensor rows = truth.sample(args.batch, rng);
  datasets::GmmFitOptions options;
  options.initial = &truth;
  options.max_iterations = static_cast<int>(args.warmup + args.steps);
  options.tolerance = 0.0;  // never stop early
  options.seed = args.seed;
  std::vector<double> seconds, gflops;
  options.on_iteration = [&](const datasets::GmmFitProgress& p) {
    if (p.iteration <= args.warmup) return;
    seconds.push_back(p.seconds);
    gflops.push_back(p.flops / p.seconds / 1e9);
  };
  datasets::fit_gmm(rows, options);
  if (gflops.empty())
    throw std::runtime_error("bench --em: EM stopped before its timed iterations");
  const double dgemm = datasets::dgemm_gflops(kDgemmSize);
  return {{"mode", "em"},
          {"components", args.em_components},
          {"dim", args.em_dim},
          {"rows", args.batch},
          {"threads", args.threads},
          {"iterations", args.steps},
          {"warmup", args.warmup},
          {"iteration_s_median", median(seconds)},
          {"em_gflops_median", median(gflops)},
          {"dgemm_gflops", dgemm},
          {"percent_of_dgemm", 100.0 * median(gflops) / dgemm}};
}

void print_em(const nlohmann::json& r) {
  std::printf(
      "dpmlab bench --em: K = %lld, D = %lld, %lld rows, %d threads, %lld iterations "
      "after %lld warm-up\n",
      r["components"].get<long long>(), r["dim"].get<long long>(), r["rows"].get<long long>(),
      r["threads"].get<int>(), r["iterations"].get<long long>(), r["warmup"].get<long long>());
  print_row("EM iteration (median)", r["iteration_s_median"], "s");
  print_row("EM rate (median)", r["em_gflops_median"], "GFLOP/s");
  print_row("raw dgemm 1024^3", r["dgemm_gflops"], "GFLOP/s");
  print_row("EM / dgemm", r["percent_of_dgemm"], "%");
}

void run_bench(const CLI::App* command, BenchArgs args) {
  if (args.denoiser) {
    if (!flag_given(command, "--batch")) args.batch = 512;
    if (!flag_given(command, "--steps")) args.steps = 3;
    if (!flag_given(command, "--warmup")) args.warmup = 1;
  } else if (args.em) {
    if (!flag_given(command, "--batch")) args.batch = 10000;
    if (!flag_given(command, "--steps")) args.steps = 3;
    if (!flag_given(command, "--warmup")) args.warmup = 1;
    if (args.batch < args.em_components)
      throw CLI::ValidationError("--batch", "--em needs at least one row per component (" +
                                                std::to_string(args.em_components) + ")");
  } else if (args.model.empty()) {
    throw CLI::ValidationError("--model", "is required unless --denoiser or --em is given");
  }
  set_num_threads(args.threads);
  const double load_before = load_average();
  nlohmann::json result = args.denoiser ? bench_denoiser(args)
                          : args.em     ? bench_em(args)
                                        : bench_training(args);
  result["peak_rss_mb"] = peak_rss_mb();
  result["load_average"] = {load_before, load_average()};
  if (!dist::Communicator::world().is_root()) return;  // rank 0 reports
  if (args.denoiser)
    print_denoiser(result);
  else if (args.em)
    print_em(result);
  else
    print_training(result);
  print_row("peak RSS", result["peak_rss_mb"], "MB");
  print_row("load average (1 min, at end)", result["load_average"][1], "");
  if (!args.json_file.empty()) {
    std::ofstream out(args.json_file);
    out << result.dump(2) << "\n";
    if (!out) throw std::runtime_error("bench: cannot write " + args.json_file);
  }
}

}  // namespace

void register_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* command = app.add_subcommand(
      "bench",
      "Training-step and inference throughput of a model against the raw sgemm roofline "
      "(FLOPs: Linear/Conv multiply-adds x 2, backward = 2x forward), or the DM denoiser's, or "
      "the EM iterations of a K = 128 GMM fit at 784 dimensions against the dgemm rate.\n"
      "Examples:\n"
      "  dpmlab bench --model unet1d --batch 128 --steps 20 --threads 2 --json unet1d.json\n"
      "  dpmlab bench --model mlp --track-every 50\n"
      "  dpmlab bench --denoiser\n"
      "  dpmlab bench --em");
  CLI::Option* model =
      command->add_option("--model", args->model, "Network: its default CLI config")
          ->check(CLI::IsMember({"mlp", "unet1d", "unet2d"}));
  command->add_option("--batch", args->batch, "Batch size (--denoiser: 512; --em: rows, 10000)")
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--steps", args->steps,
                   "Timed steps (--denoiser: denoised batches, 3; --em: EM iterations, 3)")
      ->check(CLI::PositiveNumber);
  command->add_option("--warmup", args->warmup, "Untimed steps first (--denoiser, --em: 1)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--inference-batch", args->inference_batches,
                   "Also time eval inference at these batch sizes (e.g. 512)")
      ->check(CLI::PositiveNumber);
  command->add_option("--components", args->em_components, "--em: the GMM's K")
      ->check(CLI::PositiveNumber);
  command->add_option("--dim", args->em_dim, "--em: the GMM's dimension D")
      ->check(CLI::PositiveNumber);
  command->add_option("--threads", args->threads, "Threads (oneTBB and OpenBLAS)")
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--track-every", args->track_every,
                   "Also measure the SpectralTracker's overhead at this k (0: off)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--track-jacobian", args->track_jacobian,
                   "Also measure the JacobianTracker's overhead at this k (dpmlab train "
                   "--track-jacobian; 0: off)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--json", args->json_file, "Also write the figures to this JSON file");
  command->add_option("--seed", args->seed, "Weights and data");
  CLI::Option* denoiser = command->add_flag(
      "--denoiser", args->denoiser,
      "DM denoiser throughput instead: U-Net 1-D, T = 300, 0 dB, mean forwarding, eval mode");
  CLI::Option* em = command->add_flag(
      "--em", args->em,
      "EM iterations instead: `gmm fit` of K = 128 full covariances at D = 784 on --batch rows of "
      "a random GMM, against the dgemm rate");
  model->excludes(denoiser)->excludes(em);
  denoiser->excludes(em);
  command->callback([command, args] {
    if ((args->denoiser || args->em) && (args->track_every > 0 || args->track_jacobian > 0))
      throw CLI::ValidationError(args->track_every > 0 ? "--track-every" : "--track-jacobian",
                                 "applies to training, not to --denoiser or --em");
    if ((args->denoiser || args->em) && !args->inference_batches.empty())
      throw CLI::ValidationError("--inference-batch", "applies to --model");
    if (!args->em && (flag_given(command, "--components") || flag_given(command, "--dim")))
      throw CLI::ValidationError(flag_given(command, "--dim") ? "--dim" : "--components",
                                 "applies to --em only");
    run_bench(command, *args);
  });
}

}  // namespace dpm::cli
