// dpmlab gmm make | fit | cme: Gaussian-mixture ground truth (docs/protocol.md, The GMM protocol).
// `make` draws the paper's random GMM and a normalised train/val/test set from it, `fit` fits a GMM
// to data by EM (e.g. to Fashion-MNIST, for an image-like GMM with a known CME), and `cme`
// tabulates the NMSE of the closed-form estimators (CME, LMMSE, LS) against the SNR.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/flag_config.hpp"
#include "apps/value_lists.hpp"
#include "autograd/progress_line.hpp"
#include "datasets/data_files.hpp"
#include "datasets/dense.hpp"
#include "datasets/gmm.hpp"
#include "datasets/gmm_fit.hpp"
#include "datasets/idx.hpp"
#include "datasets/image_folder.hpp"

namespace dpm::cli {
namespace {

// Sample and component counts: CLI::PositiveNumber would print a double's range in its message.
const CLI::Range kCountRange(int64_t{1}, int64_t{100'000'000});
// K N^2 doubles per covariance set: N = 1024 with K = 128 is already 1 GiB.
const CLI::Range kDimRange(int64_t{1}, int64_t{1024});

std::string out_file(const CommonArgs& common, const char* name) {
  return (std::filesystem::path(common.out) / name).string();
}

std::FILE* progress_stream(const CommonArgs& common) {
  return common.quiet ? nullptr : stderr;
}

void add_split_flags(CLI::App* command, datasets::SplitCounts& counts) {
  command->add_option("--val", counts.val, "validation samples")
      ->check(kCountRange)
      ->capture_default_str();
  command->add_option("--test", counts.test, "test samples")
      ->check(kCountRange)
      ->capture_default_str();
}

void take_split_flags(FlagConfig& config, datasets::SplitCounts& counts) {
  config.integer("--val", counts.val);
  config.integer("--test", counts.test);
}

// "wrote DIR/gmm.safetensors (...) and DIR/data.safetensors (...)" for a written data set.
void describe_dataset(const CommonArgs& common, const datasets::GmmDataset& data) {
  std::printf(
      "Normalised with the training mean and scale c = %.6g (zero mean, unit average power per "
      "entry, docs/protocol.md, The GMM protocol); the GMM was mapped the same way. Wrote %s "
      "(the normalised GMM) and %s (tensors train [%lld, %lld], val [%lld, %lld], test "
      "[%lld, %lld]).\n",
      data.normalization.scale, out_file(common, datasets::kGmmFileName).c_str(), data.path.c_str(),
      static_cast<long long>(data.train.size(0)), static_cast<long long>(data.train.size(1)),
      static_cast<long long>(data.val.size(0)), static_cast<long long>(data.val.size(1)),
      static_cast<long long>(data.test.size(0)), static_cast<long long>(data.test.size(1)));
}

// ---- gmm make ----

struct MakeArgs {
  CommonArgs common;
  int64_t dim = 64, components = 128;
  datasets::SplitCounts counts{100000, 10000, 10000};
};

void run_make(const CLI::App* command, MakeArgs& args) {
  FlagConfig config(command, args.common);
  config.integer("--dim", args.dim);
  config.integer("--components", args.components);
  config.integer("--train", args.counts.train, 2);
  take_split_flags(config, args.counts);
  config.seed(args.common.seed);
  const nlohmann::json used = config.finish();
  start_run(args.common);
  write_used_config(args.common, used);

  if (datasets::reusable_gmm_dataset(args.common.out, used)) {
    std::printf("Reusing %s and %s: they were made with the same config (%s).\n",
                out_file(args.common, datasets::kGmmFileName).c_str(),
                out_file(args.common, datasets::kDataFileName).c_str(), used.dump().c_str());
    return;
  }
  Rng rng(args.common.seed);
  Rng gmm_rng = rng.split(0);
  datasets::Gmm gmm = datasets::make_random_gmm(gmm_rng, args.dim, args.components);
  datasets::GmmDataset data =
      datasets::sample_gmm_dataset(gmm, args.counts, Shape{args.dim}, rng.split(1));
  datasets::write_gmm_dataset(args.common.out, data, used);
  std::printf(
      "Made the paper's random GMM (N = %lld, K = %lld, seed %llu; covariances as the authors' "
      "code makes them) and drew %lld train, %lld validation and %lld test samples from it. ",
      static_cast<long long>(args.dim), static_cast<long long>(args.components),
      static_cast<unsigned long long>(args.common.seed), static_cast<long long>(args.counts.train),
      static_cast<long long>(args.counts.val), static_cast<long long>(args.counts.test));
  describe_dataset(args.common, data);
}

void register_make(CLI::App* gmm) {
  auto args = std::make_shared<MakeArgs>();
  CLI::App* make = gmm->add_subcommand(
      "make",
      "Draw the paper's random GMM (docs/protocol.md, The GMM protocol) and train/val/test samples "
      "from it, normalise them with the training mean and scale, and save DIR/gmm.safetensors "
      "(the normalised GMM) and DIR/data.safetensors. Existing files made with the same config "
      "are reused.\n"
      "Example: dpmlab gmm make --dim 8 --components 4 --train 2000 --val 500 --test 500 "
      "--out runs/gmm");
  make->add_option("--dim", args->dim, "data dimension N")->check(kDimRange)->capture_default_str();
  make->add_option("--components", args->components, "mixture components K")
      ->check(kCountRange)
      ->capture_default_str();
  make->add_option("--train", args->counts.train, "training samples")
      ->check(CLI::Range(int64_t{2}, int64_t{100'000'000}))
      ->capture_default_str();
  add_split_flags(make, args->counts);
  add_common_flags(make, args->common, "runs/gmm");
  make->callback([make, args] { run_make(make, *args); });
}

// ---- gmm fit ----

struct FitArgs {
  CommonArgs common;
  std::string data, resume;
  std::string data_dir = datasets::kDefaultFashionMnistDir;
  int64_t components = 128, iters = 100, max_samples = 0, sample = 0;
  datasets::SplitCounts counts{0, 10000, 10000};
  double tolerance = 1e-3;
};

struct FitData {
  Tensor rows;         // [n, D]
  Shape sample_shape;  // [1, 28, 28] for images, else the file's per-sample shape
};

FitData load_fit_data(const FitArgs& args) {
  Tensor x = args.data == "fashion-mnist"
                 ? datasets::load_fashion_mnist(args.data_dir, "train").images
                 : datasets::read_tensor_spec(args.data, "train");
  if (x.ndim() < 2)
    throw CLI::ValidationError("--data", args.data + " holds a tensor of shape " + x.shape().str() +
                                             "; expected samples [n, ...]");
  std::vector<int64_t> dims = x.shape().vec();
  dims.erase(dims.begin());
  if (args.max_samples > 0 && x.size(0) > args.max_samples) x = x.narrow(0, 0, args.max_samples);
  return {datasets::flatten_rows(x.contiguous()), Shape(dims)};
}

// DIR/samples.png: per row, kGridSide samples of the fit (in the data's units) beside the first
// kGridSide real images of a row of the data, kGridSide rows.
void write_sample_grid(const CommonArgs& common, const datasets::GmmDataset& sampled,
                       const FitData& data) {
  constexpr int64_t kGridSide = 8;
  const int64_t rows =
      std::min({kGridSide, sampled.train.size(0) / kGridSide, data.rows.size(0) / kGridSide});
  if (rows == 0) return;
  const Tensor fitted =
      datasets::denormalize(sampled.train.narrow(0, 0, rows * kGridSide), sampled.normalization)
          .contiguous();
  const Tensor real = data.rows.narrow(0, 0, rows * kGridSide).contiguous();
  const int64_t numel = data.sample_shape.numel();
  std::vector<float> tiles;
  tiles.reserve(static_cast<size_t>(2 * rows * kGridSide * numel));
  for (int64_t r = 0; r < rows; ++r)
    for (const Tensor* source : {&fitted, &real}) {
      const float* first = source->data() + r * kGridSide * numel;
      tiles.insert(tiles.end(), first, first + kGridSide * numel);
    }
  std::vector<int64_t> dims = data.sample_shape.vec();
  dims.insert(dims.begin(), 2 * rows * kGridSide);
  const std::string path = out_file(common, "samples.png");
  datasets::write_png_grid(path, Tensor::from_vector(Shape(dims), std::move(tiles)),
                           static_cast<int>(2 * kGridSide));
  std::printf("Wrote %s (per row: %lld samples of the fit, then %lld real images).\n", path.c_str(),
              static_cast<long long>(kGridSide), static_cast<long long>(kGridSide));
}

// The state --resume names, checked against this fit (`run`); none without --resume.
std::optional<datasets::SavedGmmFitState> read_resume(const FitArgs& args,
                                                      const nlohmann::json& run) {
  if (args.resume.empty()) return std::nullopt;
  datasets::SavedGmmFitState resumed;
  try {
    resumed = datasets::load_gmm_fit_state(args.resume);
  } catch (const std::runtime_error& e) {  // not a fit state: a usage error naming the flag
    throw CLI::ValidationError("--resume", e.what());
  }
  if (resumed.run != run)
    throw CLI::ValidationError("--resume", args.resume + " is the state of a fit of " +
                                               resumed.run.dump() + "; this fit is of " +
                                               run.dump());
  if (resumed.state.iterations >= args.iters)
    throw CLI::ValidationError(
        "--resume", args.resume + " has " + std::to_string(resumed.state.iterations) +
                        " iterations done; --iters " + std::to_string(args.iters) + " leaves none");
  return resumed;
}

// Saves the fit and, with --sample, the data set drawn from it (and its grid for images).
void write_fit(FitArgs& args, const datasets::GmmFitResult& fit, const FitData& data,
               const nlohmann::json& used) {
  if (args.sample == 0) {
    datasets::save_gmm(fit.gmm, out_file(args.common, datasets::kGmmFileName));
    std::printf("Wrote %s.\n", out_file(args.common, datasets::kGmmFileName).c_str());
    return;
  }
  const std::string fitted = out_file(args.common, "gmm_fitted.safetensors");
  datasets::save_gmm(fit.gmm, fitted);
  args.counts.train = args.sample;
  datasets::GmmDataset sampled = datasets::sample_gmm_dataset(
      fit.gmm, args.counts, data.sample_shape, Rng(args.common.seed).split(1));
  datasets::write_gmm_dataset(args.common.out, sampled, used);
  std::printf(
      "Wrote %s (the fit, in the data's units), then drew %lld train, %lld validation and "
      "%lld test samples from it. ",
      fitted.c_str(), static_cast<long long>(args.counts.train),
      static_cast<long long>(args.counts.val), static_cast<long long>(args.counts.test));
  describe_dataset(args.common, sampled);
  if (datasets::is_image_shape(data.sample_shape)) write_sample_grid(args.common, sampled, data);
}

void run_fit(const CLI::App* command, FitArgs& args) {
  FlagConfig config(command, args.common);
  config.text("--data", args.data);
  config.text("--data-dir", args.data_dir);
  config.integer("--components", args.components);
  config.integer("--iters", args.iters);
  config.integer("--max-samples", args.max_samples, 0);
  config.number("--tolerance", args.tolerance, 0.0);
  config.integer("--sample", args.sample, 0);
  config.text("--resume", args.resume);
  take_split_flags(config, args.counts);
  config.seed(args.common.seed);
  const nlohmann::json used = config.finish();
  if (args.data.empty()) throw CLI::ValidationError("--data", "is required");
  start_run(args.common);
  write_used_config(args.common, used);

  FitData data = load_fit_data(args);
  const int64_t n = data.rows.size(0), dim = data.rows.size(1);
  if (n < args.components)
    throw CLI::ValidationError("--components", std::to_string(args.components) +
                                                   " components need at least as many samples, "
                                                   "got " +
                                                   std::to_string(n));
  // What the fit is of: a resumed fit must be of the same data, K and seed.
  const nlohmann::json run = {
      {"data", args.data}, {"max_samples", args.max_samples}, {"samples", n},
      {"dim", dim},        {"components", args.components},   {"seed", args.common.seed}};
  const std::optional<datasets::SavedGmmFitState> resumed = read_resume(args, run);
  const int first = resumed ? resumed->state.iterations : 0;
  // EM's rate beside the dgemm rate measured here, in this run.
  constexpr int64_t kDgemmSize = 1024;
  const double dgemm = datasets::dgemm_gflops(kDgemmSize);
  ProgressLine progress("gmm fit", args.iters - first, "iterations", progress_stream(args.common));
  const std::string state_file = out_file(args.common, "fit_state.safetensors");
  datasets::GmmFitOptions options;
  options.components = args.components;
  options.max_iterations = static_cast<int>(args.iters);
  options.tolerance = args.tolerance;
  options.seed = args.common.seed;
  if (resumed) options.resume = &resumed->state;
  std::vector<double> rates;  // GFLOP/s per iteration
  options.on_iteration = [&](const datasets::GmmFitProgress& p) {
    const double gflops = p.flops / p.seconds / 1e9;
    rates.push_back(gflops);
    char status[200];
    std::snprintf(
        status, sizeof status,
        "log-likelihood %.6g nats/sample | change %.3g | %.0f GFLOP/s (%.0f%% of dgemm)%s",
        p.log_likelihood, p.change, gflops, 100 * gflops / dgemm,
        p.restarts > 0 ? (" | " + std::to_string(p.restarts) + " re-seeded").c_str() : "");
    progress.update(p.iteration - first, status);
  };
  options.on_state = [&](const datasets::GmmFitState& state) {
    datasets::save_gmm_fit_state(state, run, state_file);
  };
  datasets::GmmFitResult fit = datasets::fit_gmm(data.rows, options);
  progress.finish(fit.converged ? "converged" : "reached --iters");
  std::sort(rates.begin(), rates.end());
  const double median = rates.empty() ? NAN : rates[rates.size() / 2];
  std::printf(
      "EM at %.0f GFLOP/s (the median over iterations of the E-step's K n D^2 and the M-step's "
      "D^2 per scattered row, over their wall time), %.0f%% of the dgemm rate measured in this "
      "run (%.0f GFLOP/s at %lld^3). ",
      median, 100 * median / dgemm, dgemm, static_cast<long long>(kDgemmSize));
  std::printf(
      "Fitted a %lld-component full-covariance GMM to %lld samples of dimension %lld from %s by "
      "EM: %d iterations (%s), final mean log-likelihood %.6g nats per sample, %lld collapsed "
      "components re-seeded, %s. ",
      static_cast<long long>(args.components), static_cast<long long>(n),
      static_cast<long long>(dim), args.data.c_str(), fit.iterations,
      fit.converged ? "converged" : "stopped at --iters",
      fit.log_likelihood.empty() ? NAN : fit.log_likelihood.back(),
      static_cast<long long>(fit.restarts),
      ProgressLine::format_duration(progress.elapsed_seconds()).c_str());
  write_fit(args, fit, data, used);
}

void register_fit(CLI::App* gmm) {
  auto args = std::make_shared<FitArgs>();
  CLI::App* fit = gmm->add_subcommand(
      "fit",
      "Fit a full-covariance GMM to data by EM (k-means++ start), with the log-likelihood per "
      "iteration on the progress line, and save DIR/gmm.safetensors. With --sample N, also draw "
      "a normalised data set from the fit, as `gmm make` does (DIR/data.safetensors; "
      "DIR/gmm.safetensors is then the normalised GMM and DIR/gmm_fitted.safetensors the fit).\n"
      "Example: dpmlab gmm fit --data fashion-mnist --max-samples 1000 --components 4 --iters 5 "
      "--sample 1000 --val 200 --test 200 --out runs/fmnist-gmm");
  fit->add_option("--data", args->data,
                  "fashion-mnist (the training split, 784-dim), or FILE.safetensors[:TENSOR] "
                  "(default tensor: the only one, else \"train\")");
  fit->add_option("--data-dir", args->data_dir, "Fashion-MNIST folder")->capture_default_str();
  fit->add_option("--components", args->components, "mixture components K")
      ->check(kCountRange)
      ->capture_default_str();
  fit->add_option("--iters", args->iters, "maximum EM iterations")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  fit->add_option("--tolerance", args->tolerance,
                  "stop when the log-likelihood per sample changes by less")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  fit->add_option("--max-samples", args->max_samples, "fit on the first N samples only (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}))
      ->capture_default_str();
  fit->add_option("--resume", args->resume,
                  "continue the fit saved in a fit_state.safetensors (written every iteration "
                  "into --out), exactly as if it had not stopped")
      ->check(CLI::ExistingFile);
  fit->add_option("--sample", args->sample,
                  "draw N training samples (and --val, --test) from the fit (0: none)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}))
      ->capture_default_str();
  add_split_flags(fit, args->counts);
  add_common_flags(fit, args->common, "runs/gmm-fit");
  fit->callback([fit, args] { run_fit(fit, *args); });
}

// ---- gmm cme ----

struct CmeArgs {
  CommonArgs common;
  std::string gmm, data, snr = "-20:30:5";
  int64_t max_samples = 0;
};

struct CmeRow {
  double snr_db, cme, lmmse, ls;
};

void write_cme_outputs(const CommonArgs& common, const CmeArgs& args, const Tensor& x,
                       const std::vector<CmeRow>& rows) {
  std::ofstream csv(out_file(common, "nmse.csv"));
  csv.precision(9);
  csv << "snr_db,cme,lmmse,ls\n";
  nlohmann::json results = nlohmann::json::array();
  for (const CmeRow& r : rows) {
    csv << r.snr_db << ',' << r.cme << ',' << r.lmmse << ',' << r.ls << '\n';
    results.push_back(
        {{"snr_db", r.snr_db}, {"nmse", {{"cme", r.cme}, {"lmmse", r.lmmse}, {"ls", r.ls}}}});
  }
  if (!csv) throw std::runtime_error("cannot write " + out_file(common, "nmse.csv"));
  std::ofstream json(out_file(common, "nmse.json"));
  json << nlohmann::json{{"gmm", args.gmm},
                         {"data", args.data},
                         {"samples", x.size(0)},
                         {"dim", x.size(1)},
                         {"noise_seed", common.seed},
                         {"metric",
                          "NMSE = sum ||x - x_hat||^2 / sum ||x||^2, y = x + n, "
                          "n ~ N(0, sigma^2 I), SNR = 1 / sigma^2"},
                         {"results", results}}
              .dump(2)
       << '\n';
  if (!json) throw std::runtime_error("cannot write " + out_file(common, "nmse.json"));
}

void run_cme(const CLI::App* command, CmeArgs& args) {
  FlagConfig config(command, args.common);
  config.text("--gmm", args.gmm);
  config.text("--data", args.data);
  config.text("--snr", args.snr);
  config.integer("--max-samples", args.max_samples, 0);
  config.seed(args.common.seed);
  const nlohmann::json used = config.finish();
  if (args.gmm.empty()) throw CLI::ValidationError("--gmm", "is required");
  if (args.data.empty()) throw CLI::ValidationError("--data", "is required");
  const std::vector<double> grid = parse_number_list(args.snr, "--snr");
  start_run(args.common);
  write_used_config(args.common, used);

  const datasets::Gmm gmm = datasets::load_gmm(args.gmm);
  Tensor x = datasets::read_tensor_spec(args.data, "test");
  if (args.max_samples > 0 && x.size(0) > args.max_samples) x = x.narrow(0, 0, args.max_samples);
  x = datasets::flatten_rows(x.contiguous()).contiguous();
  if (x.size(1) != gmm.dim)
    throw std::runtime_error("the data (" + args.data + ") have dimension " +
                             std::to_string(x.size(1)) + ", the GMM (" + args.gmm + ") has " +
                             std::to_string(gmm.dim));
  double power = 0;
  for (float v : x.to_vector()) power += static_cast<double>(v) * v;
  power /= static_cast<double>(x.numel());
  if (power < 0.5 || power > 2.0)
    std::fprintf(stderr,
                 "dpmlab: warning: SNR = 1 / sigma^2 assumes unit average power per entry; these "
                 "data have %.3g\n",
                 power);

  ProgressLine progress("gmm cme", static_cast<int64_t>(grid.size()), "SNRs",
                        progress_stream(args.common));
  std::vector<CmeRow> rows;
  for (size_t i = 0; i < grid.size(); ++i) {
    const double sigma2 = datasets::snr_db_to_sigma2(grid[i]);
    Rng noise_rng = Rng(args.common.seed).split(i);
    Tensor y = Tensor::empty(x.shape());
    noise_rng.fill_normal(y.data(), y.numel(), 0.0f, static_cast<float>(std::sqrt(sigma2)));
    y.add_(x);
    rows.push_back({grid[i], datasets::nmse(x, gmm.cme(y, sigma2)),
                    datasets::nmse(x, gmm.lmmse(y, sigma2)), datasets::nmse(x, datasets::ls(y))});
    progress.update(static_cast<int64_t>(i + 1));
  }
  progress.finish();

  std::printf(
      "NMSE on %lld samples of dimension %lld (%s), GMM %s (K = %lld), noise seed %llu:\n\n",
      static_cast<long long>(x.size(0)), static_cast<long long>(x.size(1)), args.data.c_str(),
      args.gmm.c_str(), static_cast<long long>(gmm.components),
      static_cast<unsigned long long>(args.common.seed));
  std::printf("| SNR (dB) | CME | LMMSE | LS |\n|---:|---:|---:|---:|\n");
  for (const CmeRow& r : rows)
    std::printf("| %g | %.4g | %.4g | %.4g |\n", r.snr_db, r.cme, r.lmmse, r.ls);
  write_cme_outputs(args.common, args, x, rows);
  std::printf("\nWrote %s and %s.\n", out_file(args.common, "nmse.csv").c_str(),
              out_file(args.common, "nmse.json").c_str());
}

void register_cme(CLI::App* gmm) {
  auto args = std::make_shared<CmeArgs>();
  CLI::App* cme = gmm->add_subcommand(
      "cme",
      "NMSE of the closed-form estimators of x from y = x + n for a GMM prior: the conditional "
      "mean (CME), LMMSE and LS, against the SNR (docs/protocol.md, The GMM protocol). A markdown "
      "table on stdout; nmse.csv and nmse.json in --out.\n"
      "Example: dpmlab gmm cme --gmm runs/gmm/gmm.safetensors --data runs/gmm/data.safetensors "
      "--snr -10:20:10");
  cme->add_option("--gmm", args->gmm, "the GMM (gmm.safetensors)");
  cme->add_option("--data", args->data, "FILE.safetensors[:TENSOR] (default tensor \"test\")");
  cme->add_option("--snr", args->snr, "SNR grid in dB: START:STOP:STEP or A,B,C")
      ->capture_default_str();
  cme->add_option("--max-samples", args->max_samples, "use the first N samples only (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}))
      ->capture_default_str();
  add_common_flags(cme, args->common, "runs/gmm-cme");
  cme->callback([cme, args] { run_cme(cme, *args); });
}

}  // namespace

void register_gmm_command(CLI::App& app) {
  CLI::App* gmm = app.add_subcommand(
      "gmm",
      "Gaussian-mixture ground truth: make the paper's random GMM data set, fit a GMM by EM, "
      "tabulate the exact CME.\n"
      "Example: dpmlab gmm make --dim 8 --components 4 --train 2000 --val 500 --test 500 "
      "--out runs/gmm");
  gmm->require_subcommand(1);
  register_make(gmm);
  register_fit(gmm);
  register_cme(gmm);
}

}  // namespace dpm::cli
