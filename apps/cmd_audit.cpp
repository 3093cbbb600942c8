// dpmlab audit: the Lipschitz audit of a trained noise network (diffusion/lipschitz_audit.hpp,
// docs/lipschitz.md): certified upper bounds, empirical lower bounds, exact values on GMM data
// and the hyperparameter-only bounds, per step t and for the denoiser per SNR. Prints the tables
// and writes DIR/audit.md, DIR/audit.json and gnuplot plots (each .gp script beside its PNG).
#include <cmath>
#include <filesystem>
#include <iostream>
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
#include "autograd/rng.hpp"
#include "datasets/data_files.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/lipschitz_audit.hpp"
#include "diffusion/oracle.hpp"
#include "experiments/report/files.hpp"
#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"

namespace dpm::cli {
namespace {

using experiments::report::Plot;
using experiments::report::render_plots;
using experiments::report::write_text;

namespace fs = std::filesystem;

struct AuditArgs {
  CommonArgs common;
  std::string checkpoint, gmm, data, t_grid = "auto", snr = "-20:30:10", start = "t_hat",
                                     denoiser_method = "forward";
  int64_t samples = 16, denoiser_samples = 4, oracle_samples = 512, max_iterations = 30,
          denoiser_iterations = 3;
  double tolerance = 1e-3;
};

// "auto": 1, 2, 5, 10, 20, 50, ... below T, then T; or a comma-separated list of steps 1..T.
std::vector<int64_t> parse_t_grid(const std::string& text, int64_t T) {
  std::vector<int64_t> grid;
  if (text == "auto") {
    for (int64_t decade = 1; decade < T; decade *= 10)
      for (int64_t m : {1, 2, 5})
        if (m * decade < T) grid.push_back(m * decade);
    grid.push_back(T);
    return grid;
  }
  return parse_integer_list(text, "--t-grid", 1, T);
}

Tensor with_rows(const Tensor& x, const Shape& sample_shape) {
  std::vector<int64_t> dims = sample_shape.vec();
  dims.insert(dims.begin(), x.size(0));
  return x.contiguous().reshape(Shape(dims));
}

// The data files and gnuplot scripts of the four plots.
std::vector<Plot> write_plot_data(const diffusion::LipschitzAudit& audit,
                                  const diffusion::Schedule& schedule, const fs::path& dir) {
  // Every t: the certified bounds and the hyperparameter bounds.
  std::ostringstream curves;
  curves << "# t certified_eps certified_mean c_t inv_sqrt_alpha_t\n";
  for (int64_t t = 1; t <= schedule.T(); ++t)
    curves << t << ' ' << experiments::report::plot_number(audit.certified.available ? audit.certified.eps[t] : NAN) << ' '
           << experiments::report::plot_number(audit.certified.available ? audit.certified.mean[t] : NAN) << ' '
           << experiments::report::plot_number(diffusion::stepwise_cme_lower_bound(schedule, t)) << ' '
           << experiments::report::plot_number(diffusion::stepwise_cme_log_concave_bound(schedule, t)) << '\n';
  write_text(dir / "audit_curves.dat", curves.str());
  // The audited steps: empirical and exact.
  std::ostringstream steps;
  steps << "# t empirical_eps_max exact_eps_max empirical_mean_max exact_cme_max exact_cme_mean"
           " exceed_fraction\n";
  for (const diffusion::StepAudit& s : audit.steps)
    steps << s.t << ' ' << experiments::report::plot_number(s.empirical_eps.max) << ' '
          << experiments::report::plot_number(s.exact ? s.exact_eps.max : NAN) << ' ' << experiments::report::plot_number(s.empirical_mean.max)
          << ' ' << experiments::report::plot_number(s.exact ? s.exact_cme_population.max : NAN) << ' '
          << experiments::report::plot_number(s.exact ? s.exact_cme_population.mean : NAN) << ' '
          << experiments::report::plot_number(s.exact ? s.exceed_fraction : NAN) << '\n';
  write_text(dir / "audit_steps.dat", steps.str());
  // The denoiser, in log10.
  std::ostringstream denoisers;
  denoisers << "# snr_db log10_certified log10_empirical_max log10_exact_max "
               "log10_log_concave_bound\n";
  for (const diffusion::DenoiserAudit& d : audit.denoisers)
    denoisers << experiments::report::plot_number(d.snr_db) << ' ' << experiments::report::plot_number(d.log10_certified) << ' '
              << experiments::report::plot_number(std::log10(d.empirical.max)) << ' '
              << experiments::report::plot_number(d.exact ? std::log10(d.exact_norm.max) : NAN) << ' '
              << experiments::report::plot_number(std::log10(d.log_concave_bound)) << '\n';
  write_text(dir / "audit_denoiser.dat", denoisers.str());

  // The certified bounds are astronomically above the rest: they get the right axis.
  const std::string header =
      "set terminal pngcairo size 1000,750 noenhanced\nset key below maxrows 3\nset grid\n"
      "set ytics nomirror\nset y2tics\n";
  const std::string t_axis =
      "set xlabel 't'\nset xrange [1:" + std::to_string(schedule.T()) + "]\n";
  std::vector<Plot> plots;
  plots.push_back(
      {"lipschitz_eps",
       header +
           "set output 'lipschitz_eps.png'\nset title 'eps_theta(., t): Lipschitz constant in x'\n"
           "set logscale x\nset logscale y\nset logscale y2\n" +
           t_axis +
           "set ylabel 'measured Jacobian norm'\nset y2label 'certified bound'\n"
           "plot 'audit_steps.dat' using 1:2 with linespoints pt 7 title 'empirical lower: max "
           "||J(x)||', \\\n"
           "     'audit_steps.dat' using 1:3 with linespoints pt 5 title 'exact eps* (GMM): max "
           "||J(x)||', \\\n"
           "     'audit_curves.dat' using 1:2 axes x1y2 with lines lw 2 title 'certified upper, "
           "AutoLip (right axis)'\n"});
  plots.push_back(
      {"lipschitz_mean",
       header +
           "set output 'lipschitz_mean.png'\n"
           "set title 'mu_theta(., t) and the stepwise CME f_t: Lipschitz constant in x'\n"
           "set logscale x\nset logscale y\nset logscale y2\n" +
           t_axis +
           "set ylabel 'Jacobian norm'\nset y2label 'certified bound'\n"
           "plot 'audit_steps.dat' using 1:4 with linespoints pt 7 title 'empirical lower: "
           "mu_theta max ||J(x)||', \\\n"
           "     'audit_steps.dat' using 1:5 with linespoints pt 5 title 'exact f_t (GMM): "
           "max ||J_t(x)||', \\\n"
           "     'audit_curves.dat' using 1:5 with lines dt 2 title '1/sqrt(alpha_t): upper, "
           "log-concave prior only', \\\n"
           "     'audit_curves.dat' using 1:4 with lines dt 3 title 'c_t: lower for exact "
           "f_t, any prior', \\\n"
           "     'audit_curves.dat' using 1:3 axes x1y2 with lines lw 2 title 'certified "
           "upper: mu_theta, network form (right axis)'\n"});
  plots.push_back({"lipschitz_cme",
                   header +
                       "set output 'lipschitz_cme.png'\n"
                       "set title 'Where the log-concave bound fails: exact ||J_t(x)|| against "
                       "1/sqrt(alpha_t)'\n"
                       "set logscale x\n" +
                       t_axis +
                       "set ylabel 'Jacobian norm'\n"
                       "set y2label 'share of points above 1/sqrt(alpha_t)'\nset y2range [0:1]\n"
                       "plot 'audit_steps.dat' using 1:5 with linespoints pt 5 title 'exact f_t "
                       "(GMM): max ||J_t(x)||', \\\n"
                       "     'audit_steps.dat' using 1:6 with linespoints pt 4 title 'exact f_t "
                       "(GMM): mean ||J_t(x)||', \\\n"
                       "     'audit_steps.dat' using 1:4 with linespoints pt 7 title 'empirical "
                       "lower: mu_theta max ||J(x)||', \\\n"
                       "     'audit_curves.dat' using 1:5 with lines dt 2 title '1/sqrt(alpha_t): "
                       "upper, log-concave prior only', \\\n"
                       "     'audit_curves.dat' using 1:4 with lines dt 3 title 'c_t: lower for "
                       "exact f_t, any prior', \\\n"
                       "     'audit_steps.dat' using 1:7 axes x1y2 with impulses lw 4 title 'share "
                       "above 1/sqrt(alpha_t) (right axis)'\n"});
  plots.push_back(
      {"lipschitz_denoiser",
       header + "set output 'lipschitz_denoiser.png'\n"
                "set title 'Mean-forwarding denoiser D(y): Lipschitz constant in y'\n"
                "set logscale y\nset xlabel 'observation SNR (dB)'\nset ylabel 'Jacobian norm'\n"
                "set y2label 'log10 of the certified bound'\n"
                "plot 'audit_denoiser.dat' using 1:(10**$3) with linespoints pt 7 title 'empirical "
                "lower: network D (forward iteration)', \\\n"
                "     'audit_denoiser.dat' using 1:(10**$4) with linespoints pt 5 title 'exact D* "
                "(GMM): max ||J(y)||', \\\n"
                "     'audit_denoiser.dat' using 1:(10**$5) with lines dt 2 title "
                "'s/sqrt(abar_start): upper, log-concave prior only', \\\n"
                "     'audit_denoiser.dat' using 1:2 axes x1y2 with linespoints pt 9 title "
                "'certified upper: s prod Lip(mu_theta) (right axis, log10)'\n"});
  return plots;
}

void run_audit(const CLI::App* command, AuditArgs& args) {
  FlagConfig config(command, args.common);
  config.text("checkpoint", args.checkpoint);
  config.text("--gmm", args.gmm);
  config.text("--data", args.data);
  config.text("--t-grid", args.t_grid);
  config.text("--snr", args.snr);
  config.text("--start", args.start);
  config.integer("--samples", args.samples);
  config.integer("--denoiser-samples", args.denoiser_samples);
  config.integer("--oracle-samples", args.oracle_samples);
  config.number("--tolerance", args.tolerance, 0.0);
  config.integer("--max-iterations", args.max_iterations, 3);
  config.integer("--denoiser-iterations", args.denoiser_iterations);
  config.text("--denoiser-method", args.denoiser_method);
  config.seed(args.common.seed);
  const nlohmann::json used = config.finish();
  if (args.checkpoint.empty()) throw CLI::ValidationError("checkpoint", "is required");
  if (args.start != "t_hat" && args.start != "t_hat-1")
    throw CLI::ValidationError("--start", "must be t_hat or t_hat-1, got '" + args.start + "'");
  if (args.denoiser_method != "forward" && args.denoiser_method != "krylov")
    throw CLI::ValidationError("--denoiser-method",
                               "must be forward or krylov, got '" + args.denoiser_method + "'");
  if (args.denoiser_samples > args.samples)
    throw CLI::ValidationError("--denoiser-samples", "must not exceed --samples");

  const diffusion::DpmCheckpoint checkpoint = diffusion::load_dpm_checkpoint(args.checkpoint);
  const diffusion::Schedule& schedule = checkpoint.schedule;
  diffusion::AuditSettings settings;
  settings.steps = parse_t_grid(args.t_grid, schedule.T());
  settings.snr_db = parse_number_list(args.snr, "--snr");
  settings.samples = args.samples;
  settings.denoiser_samples = args.denoiser_samples;
  settings.oracle_samples = args.oracle_samples;
  settings.norms.tolerance = args.tolerance;
  settings.norms.max_iterations = static_cast<int>(args.max_iterations);
  settings.denoiser_iterations = static_cast<int>(args.denoiser_iterations);
  settings.denoiser_method = args.denoiser_method == "krylov" ? diffusion::DenoiserMethod::krylov
                                                              : diffusion::DenoiserMethod::forward;
  settings.authors_offset = args.start == "t_hat-1";
  settings.seed = args.common.seed;
  start_run(args.common);
  write_used_config(args.common, used);

  // The data's GMM and clean samples: the flags, else the training data directory's files.
  const datasets::TrainingData data = datasets::training_data(checkpoint.metadata, args.checkpoint);
  const fs::path data_dir = data.source;
  std::string gmm_path = args.gmm;
  if (gmm_path.empty() && !data.source.empty() && fs::exists(data_dir / datasets::kGmmFileName))
    gmm_path = (data_dir / datasets::kGmmFileName).string();
  std::string data_spec = args.data;
  if (data_spec.empty() && !data.source.empty() && fs::exists(data_dir / datasets::kDataFileName))
    data_spec = (data_dir / datasets::kDataFileName).string() + ":test";
  std::optional<datasets::Gmm> gmm;
  if (!gmm_path.empty()) gmm = datasets::load_gmm(gmm_path);
  Tensor clean;
  if (!data_spec.empty()) clean = datasets::read_tensor_spec(data_spec, "test");

  const nlohmann::json model_config = checkpoint.model->config();
  Shape model_shape;
  if (data.model_shape)
    model_shape = *data.model_shape;
  else if (data.sample_shape || clean.defined() || gmm || model_config.value("arch", "") == "mlp") {
    std::vector<int64_t> row_dims = clean.defined() ? clean.shape().vec() : std::vector<int64_t>{0};
    row_dims.erase(row_dims.begin());
    const Shape shape = data.sample_shape ? *data.sample_shape
                        : clean.defined() ? Shape(row_dims)
                        : gmm             ? Shape{gmm->dim}
                                          : Shape{model_config.at("dim").get<int64_t>()};
    model_shape =
        as_usage_error("--data", [&] { return datasets::model_input_shape(model_config, shape); });
  } else {
    throw CLI::ValidationError("--data",
                               "the checkpoint does not record its sample shape; give "
                               "--data FILE[:tensor] or --gmm FILE");
  }

  Rng rng = Rng(args.common.seed).split(7);
  std::string source;
  const int64_t pool = std::max(args.samples, gmm ? args.oracle_samples : 0);
  if (clean.defined()) {
    if (clean.numel() != clean.size(0) * model_shape.numel())
      throw CLI::ValidationError("--data", "samples of shape " + clean.shape().str() +
                                               " do not fit the network's input " +
                                               model_shape.str());
    source = data_spec + " (" + std::to_string(clean.size(0)) + " rows)";
  } else if (gmm) {
    clean = gmm->sample(pool, rng);
    source = "draws from the GMM " + gmm_path;
  } else {
    std::vector<int64_t> dims = model_shape.vec();
    dims.insert(dims.begin(), pool);
    clean = randn(Shape(dims), rng);
    source = "N(0, I), a stand-in for unknown unit-power data (no --data, no GMM)";
  }
  if (gmm && gmm->dim != model_shape.numel())
    throw CLI::ValidationError("--gmm", "the GMM has dimension " + std::to_string(gmm->dim) +
                                            ", the network takes " + model_shape.str());

  auto network = diffusion::make_predictor(checkpoint);
  std::optional<diffusion::GmmOracle> oracle;
  if (gmm) oracle.emplace(*gmm, schedule);
  diffusion::AuditInputs inputs{network.get(), model_shape, with_rows(clean, model_shape), source,
                                oracle ? &*oracle : nullptr};

  ProgressLine progress("audit", 0, "parts", args.common.quiet ? nullptr : stderr, 1.0);
  const diffusion::LipschitzAudit audit = diffusion::run_lipschitz_audit(
      inputs, settings, [&](int64_t done, int64_t total, const std::string& stage) {
        progress.set_total(total);
        progress.update(done, stage);
      });
  progress.finish();

  const fs::path out(args.common.out);
  std::cout << audit.text_table();
  write_text(out / "audit.md", audit.markdown());
  write_text(out / "audit.json", audit.to_json().dump(2) + "\n");
  std::string plotted;
  for (const std::string& png : render_plots(write_plot_data(audit, schedule, out), out, "audit"))
    plotted += " " + png;
  std::cout << "\nPoints: " << source << ". " << audit.seconds << " s. Wrote " << out.string()
            << "/audit.md, audit.json" << (plotted.empty() ? "" : ",") << plotted
            << " (plot scripts *.gp beside them).\n";
}

}  // namespace

void register_audit_command(CLI::App& app) {
  auto args = std::make_shared<AuditArgs>();
  CLI::App* audit = app.add_subcommand(
      "audit",
      "Lipschitz audit of a trained noise network: per step t, certified upper bounds (AutoLip "
      "from the layer norms), empirical lower bounds (measured Jacobian norms, pairwise ratios), "
      "exact values of the GMM's exact maps when the data's GMM is known, and the bounds that "
      "depend only on the schedule (each valid under its stated assumption); the same for the "
      "mean-forwarding denoiser at each SNR. Writes audit.md, audit.json and PNG plots "
      "(docs/lipschitz.md explains every number).\n"
      "Example: dpmlab audit runs/train/best.safetensors --out runs/audit");
  audit->add_option("checkpoint", args->checkpoint, "a checkpoint of `dpmlab train` (train_dpm)")
      ->check(CLI::ExistingFile);
  audit
      ->add_option("--gmm", args->gmm,
                   "the data's GMM (datasets::save_gmm); default: gmm.safetensors of the "
                   "checkpoint's training data directory, if there")
      ->check(CLI::ExistingFile);
  audit->add_option("--data", args->data,
                    "clean samples FILE.safetensors[:tensor] (default tensor: test); default: "
                    "the training data directory's data.safetensors, else GMM draws, else N(0, I)");
  audit
      ->add_option("--t-grid", args->t_grid,
                   "steps to audit: auto (1, 2, 5, 10, 20, ... and T) or a list like 1,10,100")
      ->capture_default_str();
  audit->add_option("--snr", args->snr, "denoiser SNRs in dB: START:STOP:STEP or a list")
      ->capture_default_str();
  audit
      ->add_option("--start", args->start,
                   "denoiser start step: t_hat (default) or t_hat-1 (the authors' code)")
      ->capture_default_str();
  audit
      ->add_option("--samples", args->samples,
                   "points per step (and observations for D*); one batch through the network")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  audit
      ->add_option("--denoiser-samples", args->denoiser_samples,
                   "observations for the network's whole denoiser (costly: start step x 2 x this "
                   "network evaluations per iteration)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  audit
      ->add_option("--oracle-samples", args->oracle_samples,
                   "points per step for the exact statistics on GMM data")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  audit
      ->add_option("--tolerance", args->tolerance,
                   "relative tolerance of every measured Jacobian norm (extrapolated)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  audit->add_option("--max-iterations", args->max_iterations, "J v products per step, at most")
      ->check(CLI::Range(int64_t{3}, int64_t{10000}))
      ->capture_default_str();
  audit
      ->add_option("--denoiser-iterations", args->denoiser_iterations,
                   "J v products through the whole denoiser")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}))
      ->capture_default_str();
  audit
      ->add_option("--denoiser-method", args->denoiser_method,
                   "forward (J v only, by central differences per step) or krylov (also J^T u "
                   "through the tape, step by step: about 2.5 times the cost per iteration)")
      ->check(CLI::IsMember({"forward", "krylov"}))
      ->capture_default_str();
  add_common_flags(audit, args->common, "runs/audit");
  audit->callback([audit, args] { run_audit(audit, *args); });
}

}  // namespace dpm::cli
