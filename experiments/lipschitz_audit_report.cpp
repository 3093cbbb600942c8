#include "experiments/lipschitz_audit_report.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments::report {
namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// What each kind of number means: the JSON's legend (its keys) and the markdown's list.
const std::vector<std::pair<const char*, const char*>> kLegend = {
    {"certified",
     "upper bound on the Lipschitz constant in x, from the network's layer norms (AutoLip over "
     "its graph at that t; layer norms by power iteration converged to layer_tolerance)"},
    {"empirical",
     "measured Jacobian norms of the network at the points (max and mean over points): each is "
     "a lower bound on the Lipschitz constant, up to the finite-difference error (~1e-4)"},
    {"exact",
     "Jacobian norms of the exact maps (eps*, the stepwise CME f_t, the oracle denoiser D*) of "
     "the data's GMM at the points, in double precision"},
    {"hyperparameter.cme_lower",
     "c_t = sqrt(alpha_t)(1 - abar_{t-1})/(1 - abar_t): ||J_t(x)|| >= c_t for the exact "
     "stepwise CME at every x, valid for EVERY prior"},
    {"hyperparameter.cme_log_concave_upper",
     "1/sqrt(alpha_t): ||J_t(x)|| <= it for the exact stepwise CME, valid ONLY for log-concave "
     "priors"},
    {"denoiser.log_concave_bound",
     "s/sqrt(abar_start): Lip(D) for the exact CME steps, valid ONLY for log-concave priors"},
    {"denoiser.chain_log_concave_bound",
     "1/sqrt(abar_start): Lip(f_1 o ... o f_start) without the input scaling s, valid ONLY for "
     "log-concave priors"},
    {"denoiser.empirical",
     "the measured norm of the network's D at the observations: forward iteration (J v only; "
     "approaches the spectral radius) or Krylov norms (J v and J^T u); a lower bound"},
    {"denoiser.exact.measured_over_exact",
     "the same method applied to the oracle denoiser D*, divided by D*'s exact norm at the same "
     "observations: how much of the norm the method finds"},
    {"pairwise",
     "max ||f(x) - f(x')|| / ||x - x'||: empirical lower bounds on the Lipschitz "
     "constant (nearby: x' = x + 0.01 max(||x||,1) v along the measured top "
     "direction; random: all pairs of points)"}};

// ---------------------------------------------------------------------------------------------
// JSON

nlohmann::json json_number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json json_statistics(const PointStatistics& s) {
  return {{"max", json_number(s.max)}, {"mean", json_number(s.mean)}, {"count", s.count}};
}

nlohmann::json step_json(const StepAudit& s) {
  nlohmann::json step = {
      {"t", s.t},
      {"beta", s.beta},
      {"alpha", s.alpha},
      {"abar", s.abar},
      {"hyperparameter",
       {{"cme_lower", json_number(s.cme_lower)},
        {"cme_log_concave_upper", json_number(s.cme_log_concave_upper)}}},
      {"certified",
       {{"eps", json_number(s.certified_eps)}, {"mean", json_number(s.certified_mean)}}},
      {"empirical",
       {{"eps", json_statistics(s.empirical_eps)},
        {"mean", json_statistics(s.empirical_mean)},
        {"eps_converged", s.eps_converged},
        {"mean_converged", s.mean_converged},
        {"iterations", s.iterations},
        {"pairwise",
         {{"eps_nearby", json_number(s.eps_nearby)},
          {"eps_random", json_number(s.eps_random)},
          {"mean_nearby", json_number(s.mean_nearby)},
          {"mean_random", json_number(s.mean_random)}}}}},
      {"exact", nullptr}};
  if (s.exact)
    step["exact"] = {{"eps", json_statistics(s.exact_eps)},
                     {"cme", json_statistics(s.exact_cme)},
                     {"cme_population", json_statistics(s.exact_cme_population)},
                     {"exceed_fraction", json_number(s.exceed_fraction)},
                     {"exceed_max_ratio", json_number(s.exceed_max_ratio)},
                     {"lower_min_ratio", json_number(s.lower_min_ratio)}};
  return step;
}

nlohmann::json denoiser_json(const DenoiserAudit& d, DenoiserMethod method) {
  nlohmann::json denoiser = {
      {"snr_db", d.snr_db},
      {"matched_step", d.matched_step},
      {"start_step", d.start_step},
      {"scale", d.scale},
      {"hyperparameter",
       {{"log_concave_bound", json_number(d.log_concave_bound)},
        {"chain_log_concave_bound", json_number(d.log_concave_bound / d.scale)}}},
      {"certified", {{"log10", json_number(d.log10_certified)}}},
      {"empirical",
       {{"norm", json_statistics(d.empirical)},
        {"method", choice_name(method)},
        {"iterations", d.iterations},
        {"pairwise_random", json_number(d.pairwise_random)},
        {"network_evaluations", d.network_evaluations}}},
      {"exact", nullptr}};
  if (d.exact)
    denoiser["exact"] = {{"norm", json_statistics(d.exact_norm)},
                         {"exceed_fraction", json_number(d.exceed_fraction)},
                         {"measured_over_exact",
                          {{"min", json_number(d.oracle_forward_ratio_min)},
                           {"mean", json_number(d.oracle_forward_ratio.mean)},
                           {"count", d.oracle_forward_ratio.count}}}};
  return denoiser;
}

nlohmann::json certified_json(const diffusion::CertifiedBounds& certified) {
  nlohmann::json json = {{"available", certified.available},
                         {"note", certified.note},
                         {"layers", certified.layers},
                         {"layers_converged", certified.layers_converged},
                         {"worst_remaining_error", json_number(certified.worst_remaining_error)}};
  if (certified.available) {
    // Every t, for plots: index 0 of the vectors is t = 1.
    json["eps_by_t"] = std::vector<double>(certified.eps.begin() + 1, certified.eps.end());
    json["mean_by_t"] = std::vector<double>(certified.mean.begin() + 1, certified.mean.end());
  }
  return json;
}

nlohmann::json settings_json(const LipschitzAudit& a) {
  const AuditPlan& plan = a.plan;
  return {{"steps", a.requested_steps},
          {"snr_db", plan.snr},
          {"samples", plan.samples},
          {"denoiser_samples", plan.denoiser_samples},
          {"oracle_samples", plan.oracle_samples},
          {"tolerance", plan.tolerance},
          {"max_iterations", plan.max_iterations},
          {"denoiser_iterations", plan.denoiser_iterations},
          {"authors_offset", plan.start == AuditStart::t_hat_minus_1},
          {"layer_tolerance", AuditPlan::kLayerTolerance},
          {"seed", plan.seed}};
}

// ---------------------------------------------------------------------------------------------
// Summary and tables

std::string statistics(const PointStatistics& s) {
  return number(s.max) + " / " + number(s.mean);
}

std::string percent(double fraction) {
  return std::isnan(fraction) ? "n/a" : number(100 * fraction, "%.3g") + "%";
}

// The range [lo, hi] of ratio(step) over the steps where it is finite, and the step of lo.
struct Range {
  double lo = kNaN, hi = kNaN;
  int64_t where = 0;
  bool empty() const { return std::isnan(lo); }
};

template <typename Items, typename Ratio, typename Where>
Range range_of(const Items& items, Ratio ratio, Where where) {
  Range r;
  for (const auto& item : items) {
    const double v = ratio(item);
    if (!std::isfinite(v)) continue;
    if (r.empty() || v > r.hi) r.hi = v;
    if (r.empty() || v < r.lo) {
      r.lo = v;
      r.where = where(item);
    }
  }
  return r;
}

std::string range_text(const Range& r) {
  return r.lo == r.hi ? number(r.lo, "%.3g") : number(r.lo, "%.3g") + " to " + number(r.hi, "%.3g");
}

auto t_of_step = [](const StepAudit& s) { return s.t; };

// How close the network's empirical lower bounds come to its certified upper bounds.
void summarise_certified(const LipschitzAudit& a, std::vector<std::string>& lines) {
  if (!a.certified.available) {
    lines.push_back("Certified bounds: none (" + a.certified.note + ").");
    return;
  }
  const Range eps = range_of(
      a.steps, [](const StepAudit& s) { return s.empirical_eps.max / s.certified_eps; }, t_of_step);
  const Range mean = range_of(
      a.steps, [](const StepAudit& s) { return s.empirical_mean.max / s.certified_mean; },
      t_of_step);
  if (!eps.empty())
    lines.push_back(
        "Empirical / certified (the share of the certified bound the measured norms "
        "reach): eps_theta " +
        range_text(eps) + " (loosest at t = " + std::to_string(eps.where) + "), mu_theta " +
        range_text(mean) + " (loosest at t = " + std::to_string(mean.where) + ").");
  const DenoiserAudit* loosest = nullptr;
  for (const DenoiserAudit& d : a.denoisers)
    if (!loosest || d.log10_certified - std::log10(d.empirical.max) >
                        loosest->log10_certified - std::log10(loosest->empirical.max))
      loosest = &d;
  if (loosest)
    lines.push_back("Denoiser: the certified bound is at worst " +
                    power_of_ten(loosest->log10_certified - std::log10(loosest->empirical.max)) +
                    " times the empirical norm (" + number(loosest->snr_db) + " dB: certified " +
                    power_of_ten(loosest->log10_certified) + ", empirical " +
                    number(loosest->empirical.max) + ").");
}

// Where the exact ||J_t|| exceeds the log-concave bound 1/sqrt(alpha_t), and how the network's
// empirical constants compare with the exact ones.
void summarise_exact(const LipschitzAudit& a, std::vector<std::string>& lines) {
  int64_t exact_steps = 0, failing = 0;
  double above = 0, population = 0;
  const StepAudit* worst = nullptr;
  for (const StepAudit& s : a.steps) {
    if (!s.exact) continue;
    ++exact_steps;
    above += s.exceed_fraction * static_cast<double>(s.exact_cme_population.count);
    population += static_cast<double>(s.exact_cme_population.count);
    if (s.exceed_fraction > 0) ++failing;
    if (!worst || s.exceed_max_ratio > worst->exceed_max_ratio) worst = &s;
  }
  if (exact_steps == 0) {
    lines.push_back("Exact values: none (no GMM for the data).");
    return;
  }
  lines.push_back("Log-concave bound 1/sqrt(alpha_t): the exact ||J_t|| exceeds it at " +
                  std::to_string(failing) + " of " + std::to_string(exact_steps) + " steps, at " +
                  percent(above / population) + " of all population points" +
                  (worst->exceed_max_ratio > 1
                       ? " (worst: " + number(worst->exceed_max_ratio, "%.4g") +
                             " times the bound at t = " + std::to_string(worst->t) + ")."
                       : "."));
  const Range eps = range_of(
      a.steps,
      [](const StepAudit& s) { return s.exact ? s.empirical_eps.max / s.exact_eps.max : kNaN; },
      t_of_step);
  const Range mean = range_of(
      a.steps,
      [](const StepAudit& s) { return s.exact ? s.empirical_mean.max / s.exact_cme.max : kNaN; },
      t_of_step);
  const Range denoiser = range_of(
      a.denoisers,
      [](const DenoiserAudit& d) { return d.exact ? d.empirical.max / d.exact_norm.max : kNaN; },
      [](const DenoiserAudit& d) { return d.start_step; });
  lines.push_back("Network / exact, max over the points: eps_theta / eps* " + range_text(eps) +
                  ", mu_theta / f_t " + range_text(mean) +
                  (denoiser.empty() ? "" : ", D / D* " + range_text(denoiser)) + ".");
}

std::vector<std::string> summary_lines(const LipschitzAudit& a) {
  std::vector<std::string> lines;
  summarise_certified(a, lines);
  summarise_exact(a, lines);
  int64_t evaluations = 0;
  for (const DenoiserAudit& d : a.denoisers) evaluations += d.network_evaluations;
  lines.push_back("Cost: " + duration(a.seconds) + " for " + std::to_string(a.steps.size()) +
                  " steps and " + std::to_string(a.denoisers.size()) +
                  (a.denoisers.size() == 1 ? " SNR (" : " SNRs (") + std::to_string(evaluations) +
                  " network evaluations in the denoisers).");
  return lines;
}

Table network_table(const LipschitzAudit& a) {
  Table table({"t", "certified eps", "empirical eps max/mean", "exact eps* max/mean",
               "certified mu", "empirical mu max/mean", "pairs eps near/rand", "pairs mu near/rand",
               "iters"});
  for (const StepAudit& s : a.steps)
    table.add_row(
        {std::to_string(s.t), number(s.certified_eps, "%.3g"), statistics(s.empirical_eps),
         s.exact ? statistics(s.exact_eps) : "n/a", number(s.certified_mean, "%.3g"),
         statistics(s.empirical_mean), number(s.eps_nearby) + " / " + number(s.eps_random),
         number(s.mean_nearby) + " / " + number(s.mean_random), std::to_string(s.iterations)});
  return table;
}

Table cme_table(const LipschitzAudit& a) {
  Table table({"t", "c_t (lower, any prior)", "1/sqrt(alpha_t) (upper, log-concave)",
               "exact ||J_t|| max/mean (population)", "> 1/sqrt(alpha_t)",
               "max ||J_t|| sqrt(alpha_t)", "min ||J_t|| / c_t", "empirical mu max"});
  for (const StepAudit& s : a.steps)
    table.add_row(
        {std::to_string(s.t), number(s.cme_lower, "%.6g"), number(s.cme_log_concave_upper, "%.6g"),
         s.exact ? statistics(s.exact_cme_population) : "n/a",
         s.exact ? percent(s.exceed_fraction) : "n/a", s.exact ? number(s.exceed_max_ratio) : "n/a",
         s.exact ? number(s.lower_min_ratio) : "n/a", number(s.empirical_mean.max)});
  return table;
}

Table denoiser_table(const LipschitzAudit& a) {
  Table table({"SNR dB", "t_hat", "start", "s", "log-concave bound", "certified",
               "empirical D max/mean", "pairs D", "exact D* max/mean", "D* > bound",
               "D* measured/exact min/mean", "evals"});
  for (const DenoiserAudit& d : a.denoisers)
    table.add_row({number(d.snr_db), std::to_string(d.matched_step), std::to_string(d.start_step),
                   number(d.scale), number(d.log_concave_bound, "%.6g"),
                   power_of_ten(d.log10_certified), statistics(d.empirical),
                   number(d.pairwise_random), d.exact ? statistics(d.exact_norm) : "n/a",
                   d.exact ? percent(d.exceed_fraction) : "n/a",
                   d.exact ? number(d.oracle_forward_ratio_min, "%.3g") + " / " +
                                 number(d.oracle_forward_ratio.mean, "%.3g")
                           : "n/a",
                   std::to_string(d.network_evaluations)});
  return table;
}

std::string denoiser_method_text(const LipschitzAudit& a) {
  std::ostringstream out;
  out << "Empirical: "
      << (a.plan.denoiser_method == DenoiserMethod::forward
              ? "forward iteration (products J v only"
              : "Krylov norms (products J v and J^T u, the latter by the tape step by step")
      << "; " << a.plan.denoiser_iterations
      << " of them, J v by per-step central differences through the reverse loop) on "
      << a.plan.denoiser_samples
      << " observations; 'D* measured/exact' applies the same method to the oracle denoiser at "
         "the same observations and divides by its exact norm there (1: the method finds the "
         "norm). Certified: s prod_t Lip(mu_theta(., t)).";
  return out.str();
}

// ---------------------------------------------------------------------------------------------
// Plots

// The data files the plots read: every t (certified and hyperparameter bounds), the audited
// steps, and the denoisers (in log10).
void write_plot_data(const LipschitzAudit& a, const fs::path& dir) {
  std::ostringstream curves;
  curves << "# t certified_eps certified_mean c_t inv_sqrt_alpha_t\n";
  for (size_t i = 0; i < a.cme_lower_by_t.size(); ++i)
    curves << i + 1 << ' ' << plot_number(a.certified.available ? a.certified.eps[i + 1] : kNaN)
           << ' ' << plot_number(a.certified.available ? a.certified.mean[i + 1] : kNaN) << ' '
           << plot_number(a.cme_lower_by_t[i]) << ' ' << plot_number(a.cme_log_concave_by_t[i])
           << '\n';
  write_text(dir / "audit_curves.dat", curves.str());
  std::ostringstream steps;
  steps << "# t empirical_eps_max exact_eps_max empirical_mean_max exact_cme_max exact_cme_mean"
           " exceed_fraction\n";
  for (const StepAudit& s : a.steps)
    steps << s.t << ' ' << plot_number(s.empirical_eps.max) << ' '
          << plot_number(s.exact ? s.exact_eps.max : kNaN) << ' '
          << plot_number(s.empirical_mean.max) << ' '
          << plot_number(s.exact ? s.exact_cme_population.max : kNaN) << ' '
          << plot_number(s.exact ? s.exact_cme_population.mean : kNaN) << ' '
          << plot_number(s.exact ? s.exceed_fraction : kNaN) << '\n';
  write_text(dir / "audit_steps.dat", steps.str());
  std::ostringstream denoisers;
  denoisers << "# snr_db log10_certified log10_empirical_max log10_exact_max "
               "log10_log_concave_bound\n";
  for (const DenoiserAudit& d : a.denoisers)
    denoisers << plot_number(d.snr_db) << ' ' << plot_number(d.log10_certified) << ' '
              << plot_number(std::log10(d.empirical.max)) << ' '
              << plot_number(d.exact ? std::log10(d.exact_norm.max) : kNaN) << ' '
              << plot_number(std::log10(d.log_concave_bound)) << '\n';
  write_text(dir / "audit_denoiser.dat", denoisers.str());
}

// One plot of `lines` ("'FILE' using ... title '...'"), after the shared settings.
Plot audit_plot(const std::string& name, const std::string& settings,
                const std::vector<std::string>& lines) {
  // The certified bounds are astronomically above the rest: they get the right axis.
  std::string script =
      "set terminal pngcairo size 1000,750 noenhanced\nset key below maxrows 3\n"
      "set grid\nset ytics nomirror\nset y2tics\nset output '" +
      name + ".png'\n" + settings + "plot ";
  for (size_t i = 0; i < lines.size(); ++i) script += (i ? ", \\\n     " : "") + lines[i];
  return {name, script + "\n"};
}

// Four plots, each about one map: eps_theta, mu_theta, the exact CME's log-concave bound, D.
std::vector<Plot> audit_plots(const LipschitzAudit& a) {
  const std::string t_axis =
      "set logscale x\nset xlabel 't'\nset xrange [1:" + std::to_string(a.cme_lower_by_t.size()) +
      "]\n";
  const std::string log_y = "set logscale y\nset logscale y2\n";
  return {
      audit_plot("lipschitz_eps",
                 "set title 'eps_theta(., t): Lipschitz constant in x'\n" + log_y + t_axis +
                     "set ylabel 'measured Jacobian norm'\nset y2label 'certified bound'\n",
                 {"'audit_steps.dat' using 1:2 with linespoints pt 7 title 'empirical lower: max "
                  "||J(x)||'",
                  "'audit_steps.dat' using 1:3 with linespoints pt 5 title 'exact eps* (GMM): max "
                  "||J(x)||'",
                  "'audit_curves.dat' using 1:2 axes x1y2 with lines lw 2 title 'certified upper, "
                  "AutoLip (right axis)'"}),
      audit_plot("lipschitz_mean",
                 "set title 'mu_theta(., t) and the stepwise CME f_t: Lipschitz constant in x'\n" +
                     log_y + t_axis + "set ylabel 'Jacobian norm'\nset y2label 'certified bound'\n",
                 {"'audit_steps.dat' using 1:4 with linespoints pt 7 title 'empirical lower: "
                  "mu_theta max ||J(x)||'",
                  "'audit_steps.dat' using 1:5 with linespoints pt 5 title 'exact f_t (GMM): "
                  "max ||J_t(x)||'",
                  "'audit_curves.dat' using 1:3 axes x1y2 with lines lw 2 title 'certified "
                  "upper: mu_theta, network form (right axis)'"}),
      audit_plot("lipschitz_cme",
                 "set title 'Where the log-concave bound fails: exact ||J_t(x)|| against "
                 "1/sqrt(alpha_t)'\n" +
                     t_axis +
                     "set ylabel 'Jacobian norm'\n"
                     "set y2label 'share of points above 1/sqrt(alpha_t)'\nset y2range [0:1]\n",
                 {"'audit_steps.dat' using 1:5 with linespoints pt 5 title 'exact f_t (GMM): max "
                  "||J_t(x)||'",
                  "'audit_steps.dat' using 1:6 with linespoints pt 4 title 'exact f_t (GMM): mean "
                  "||J_t(x)||'",
                  "'audit_curves.dat' using 1:5 with lines dt 2 title '1/sqrt(alpha_t): upper, "
                  "log-concave prior only'",
                  "'audit_curves.dat' using 1:4 with lines dt 3 title 'c_t: lower for exact f_t, "
                  "any prior'",
                  "'audit_steps.dat' using 1:7 axes x1y2 with impulses lw 4 title 'share above "
                  "1/sqrt(alpha_t) (right axis)'"}),
      audit_plot("lipschitz_denoiser",
                 "set title 'Mean-forwarding denoiser D(y): Lipschitz constant in y'\n"
                 "set logscale y\nset xlabel 'observation SNR (dB)'\nset ylabel 'Jacobian norm'\n"
                 "set y2label 'log10 of the certified bound'\n",
                 {"'audit_denoiser.dat' using 1:(10**$3) with linespoints pt 7 title 'empirical "
                  "lower: network D (" +
                      std::string(choice_name(a.plan.denoiser_method)) + " method)'",
                  "'audit_denoiser.dat' using 1:(10**$4) with linespoints pt 5 title 'exact D* "
                  "(GMM): max ||J(y)||'",
                  "'audit_denoiser.dat' using 1:(10**$5) with lines dt 2 title "
                  "'s/sqrt(abar_start): upper, log-concave prior only'",
                  "'audit_denoiser.dat' using 1:2 axes x1y2 with linespoints pt 9 title "
                  "'certified upper: s prod Lip(mu_theta) (right axis, log10)'"})};
}

}  // namespace

nlohmann::json to_json(const LipschitzAudit& a) {
  nlohmann::json legend = nlohmann::json::object();
  for (const auto& [key, text] : kLegend) legend[key] = text;
  nlohmann::json steps = nlohmann::json::array();
  for (const StepAudit& s : a.steps) steps.push_back(step_json(s));
  nlohmann::json denoisers = nlohmann::json::array();
  for (const DenoiserAudit& d : a.denoisers)
    denoisers.push_back(denoiser_json(d, a.plan.denoiser_method));
  return {{"legend", legend},
          {"network", a.network},
          {"target", a.target},
          {"schedule", a.schedule},
          {"sample_shape", a.sample_shape.vec()},
          {"points", a.points},
          {"settings", settings_json(a)},
          {"certified", certified_json(a.certified)},
          {"steps", steps},
          {"denoisers", denoisers},
          {"seconds", a.seconds}};
}

std::string markdown(const LipschitzAudit& a) {
  std::ostringstream out;
  out << "# Lipschitz audit\n\n## Summary\n\n";
  for (const std::string& line : summary_lines(a)) out << "- " << line << "\n";
  out << "\n## What was measured\n\nNetwork: `" << a.network.dump() << "` predicting " << a.target << "; schedule `"
      << a.schedule.dump() << "`; samples of shape " << a.sample_shape.str() << ".\n"
      << "Points: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with x_0 from " << a.points << "; "
      << a.plan.samples << " points per step, " << a.plan.denoiser_samples
      << " observations for the network's denoiser.\n"
      << "Certified bounds: " << a.certified.note << "; " << a.certified.layers_converged << " of "
      << a.certified.layers << " layer norms converged (worst extrapolated relative error "
      << number(a.certified.worst_remaining_error, "%.2g") << ").\n\n"
      << "Kinds of numbers:\n";
  for (const auto& [key, text] : kLegend) out << "- **" << key << "**: " << text << ".\n";
  out << "\n## The network at each step: eps_theta(., t) and mu_theta(., t)\n\n"
      << network_table(a).markdown()
      << "\n## The exact stepwise CME against the hyperparameter bounds\n\n"
      << "Population: " << a.plan.oracle_samples
      << " points per step; '> 1/sqrt(alpha_t)' is the share of them where the log-concave "
         "bound fails.\n\n"
      << cme_table(a).markdown() << "\n## The mean-forwarding denoiser D(y)\n\n"
      << denoiser_method_text(a) << "\n\n"
      << denoiser_table(a).markdown();
  return out.str();
}

Written write(const LipschitzAudit& audit, const fs::path& out_dir, const std::string& command) {
  Written written;
  written.markdown = markdown(audit);
  write_text(out_dir / "audit.md", written.markdown);
  write_text(out_dir / "audit.json", to_json(audit).dump(2) + "\n");
  write_plot_data(audit, out_dir);
  written.files = {"audit.md", "audit.json"};
  written.plots = render_plots(audit_plots(audit), out_dir, command);
  return written;
}

}  // namespace dpm::experiments::report
