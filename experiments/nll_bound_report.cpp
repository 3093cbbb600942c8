#include "experiments/nll_bound_report.hpp"

#include "experiments/report/format.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments::report {
namespace {

std::string nats(double value) {
  return number(value, "%.5g");
}

const NllBoundRow* find_row(const NllBoundResults& results, const std::string& predictor,
                            diffusion::ReverseVariance variance) {
  for (const NllBoundRow& row : results.rows)
    if (row.predictor == predictor && row.variance == variance) return &row;
  return nullptr;
}

// Per reverse variance: the network's bound against eps*'s against the exact NLL.
std::string summary(const NllBoundResults& results) {
  std::string md = "## Summary\n\n";
  for (diffusion::ReverseVariance variance :
       {diffusion::ReverseVariance::beta, diffusion::ReverseVariance::beta_tilde}) {
    const NllBoundRow* network = find_row(results, "network", variance);
    const NllBoundRow* oracle = find_row(results, "oracle", variance);
    if (!network || !oracle) continue;
    md += std::string("- sigma_t^2 = ") + diffusion::reverse_variance_name(variance) +
          ": the network's bound " + nats(network->result.bound) + ", eps*'s " +
          nats(oracle->result.bound) + ", the exact NLL " + nats(results.exact_nll) +
          " nats/dim: the learning error costs " +
          nats(network->result.bound - oracle->result.bound) +
          ", the reverse variance and the T steps " +
          nats(oracle->result.bound - results.exact_nll) + ".\n";
  }
  return md + "- Cost: " + number(results.seconds, "%.3g") + " s.\n\n";
}

}  // namespace

std::string markdown(const NllBoundResults& results) {
  const NllBoundPlan& plan = results.resolved;
  Table table({"predictor", "sigma_t^2", "bound", "std. error", "L_T", "sum L_t-1 (t >= 2)", "L_0",
               "bound - NLL"});
  for (const NllBoundRow& row : results.rows) {
    const diffusion::BoundResult& r = row.result;
    table.add_row({row.predictor, diffusion::reverse_variance_name(row.variance), nats(r.bound),
                   nats(r.std_error), nats(r.prior), nats(r.transitions), nats(r.decoder),
                   nats(r.bound - results.exact_nll)});
  }
  return "# Variational bound\n\nNetwork " + plan.checkpoint + " (" + results.schedule +
         ", T = " + std::to_string(results.T) + ") on " + std::to_string(results.samples) + " " +
         choice_name(plan.split) + " samples of " + plan.data +
         " (normalised units, N = " + std::to_string(results.dim) +
         "); oracle = the exact eps* of the data's GMM with the same schedule. Bound and terms in "
         "nats per dimension, one noise draw per sample and step (seed " +
         std::to_string(plan.seed) +
         ", the same for every row). Exact NLL of the GMM: " + nats(results.exact_nll) +
         " nats/dim.\n\n" + summary(results) + "## Bounds\n\n" + table.markdown();
}

nlohmann::json to_json(const NllBoundResults& results) {
  const NllBoundPlan& plan = results.resolved;
  nlohmann::json json = {{"config", results.plan.to_json()},
                         {"checkpoint", plan.checkpoint},
                         {"data", plan.data},
                         {"split", choice_name(plan.split)},
                         {"samples", results.samples},
                         {"T", results.T},
                         {"exact_nll", results.exact_nll},
                         {"seconds", results.seconds},
                         {"rows", nlohmann::json::array()}};
  for (const NllBoundRow& row : results.rows) {
    nlohmann::json entry = row.result.to_json();
    entry["predictor"] = row.predictor;
    entry["reverse_variance"] = diffusion::reverse_variance_name(row.variance);
    entry["gap_to_nll"] = row.result.bound - results.exact_nll;
    json["rows"].push_back(entry);
  }
  return json;
}

Written write(const NllBoundResults& results, const std::filesystem::path& dir) {
  std::string header = "t";
  for (const NllBoundRow& row : results.rows)
    header += "," + row.predictor + "_" + diffusion::reverse_variance_name(row.variance);
  std::vector<std::vector<std::string>> per_step;
  for (int64_t t = 1; t <= results.T; ++t) {
    per_step.push_back({std::to_string(t)});
    for (const NllBoundRow& row : results.rows)
      per_step.back().push_back(plot_number(row.result.per_step[t]));
  }
  Written written{markdown(results), {"bound.md", "bound.json", "bound_per_step.csv"}, {}};
  write_text(dir / "bound.md", written.markdown);
  write_text(dir / "bound.json", to_json(results).dump(2) + "\n");
  write_csv(dir / "bound_per_step.csv", header, per_step);
  return written;
}

}  // namespace dpm::experiments::report
