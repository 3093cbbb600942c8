// Restoring GMM samples from compressed measurements with a DM prior: RED-Diff, DPS, PiGDM and
// DDRM driven by the exact noise predictor eps* of the GMM, each beside the exact posterior mean
// E[x0 | y] (docs/inverse.md). With a trained network, network_prior(*predictor) replaces
// oracle_prior(oracle) (diffusion/checkpoint.hpp: load_dpm_checkpoint, make_predictor).
#include <cmath>
#include <cstdio>
#include <vector>

#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/inverse/ddrm.hpp"
#include "diffusion/inverse/dps.hpp"
#include "diffusion/inverse/operators.hpp"
#include "diffusion/inverse/pigdm.hpp"
#include "diffusion/inverse/posterior.hpp"
#include "diffusion/inverse/red_diff.hpp"
#include "diffusion/inverse/scores.hpp"
#include "diffusion/oracle.hpp"

using namespace dpm::diffusion;
using namespace dpm::diffusion::inverse;

int main() {
  const int64_t dim = 16, rows = 32;
  dpm::Rng rng(0);
  const dpm::datasets::Gmm prior = dpm::datasets::make_random_gmm(rng, dim, /*components=*/8);
  GmmOracle oracle(prior, Schedule::paper_linear(300));

  // 32 samples, measured by an 8 x 16 Gaussian matrix with noise sigma_y = 0.1.
  const dpm::Tensor samples = prior.sample(rows, rng);
  const std::vector<double> x0(samples.data(), samples.data() + samples.numel());
  DenseOperator op = make_compressed_sensing(/*rows=*/8, dim, /*seed=*/1);
  Problem problem{{}, 0.1, dpm::Shape{dim}};
  {
    ScopedBatch batch(op, rows);
    problem.y = op.apply(x0);
  }
  for (double& v : problem.y) v += problem.sigma_y * rng.normal();

  const std::vector<double> best = posterior_mean(prior, op, problem.y, problem.sigma_y);
  const Prior dm_prior = oracle_prior(oracle);
  struct Row {
    const char* name;
    Restored restored;
  };
  const std::vector<Row> table = {
      {"RED-Diff", red_diff(RedDiffSettings{}, op, problem, dm_prior, rng)},
      {"DPS", dps(DpsSettings{}, op, problem, dm_prior, rng)},
      {"PiGDM", pigdm(PigdmSettings{}, op, problem, dm_prior, rng)},
      {"DDRM", ddrm(DdrmSettings{}, op, problem, dm_prior, rng)},
  };

  bool finite = true;
  std::printf("%-16s %8s %14s %6s\n", "method", "NMSE", "gap to E[x0|y]", "NFE");
  const RestorationScore optimum = score_restoration(x0, best, best, dim);
  std::printf("%-16s %8.4f %14s %6s\n", "posterior mean", optimum.nmse, "0", "-");
  for (const Row& row : table) {
    const RestorationScore s = score_restoration(x0, row.restored.x_hat.values, best, dim);
    finite = finite && std::isfinite(s.nmse);
    std::printf("%-16s %8.4f %14.4f %6lld\n", row.name, s.nmse, s.gap,
                static_cast<long long>(row.restored.evaluations));
  }
  if (finite) std::printf("restore_gmm: all values finite\n");
  return finite ? 0 : 1;
}
