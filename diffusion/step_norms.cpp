#include "diffusion/step_norms.hpp"

#include <cmath>

#include "diffusion/jacobian.hpp"

namespace dpm::diffusion {

std::vector<double> noisy_points(const Schedule& schedule, int64_t t, const std::vector<double>& x0,
                                 Rng& noise) {
  const double abar = schedule.abar(t);
  const double signal = std::sqrt(abar), spread = std::sqrt(1.0 - abar);
  std::vector<double> xt(x0.size());
  for (size_t e = 0; e < xt.size(); ++e) xt[e] = signal * x0[e] + spread * noise.normal();
  return xt;
}

StepJacobianNorms measure_step_norms(NetworkPredictor& network, int64_t t,
                                     const DoubleBatch& points,
                                     const lipschitz::KrylovSettings& settings,
                                     const std::vector<double>& start) {
  const Schedule& schedule = network.schedule();
  const double a = 1.0 / std::sqrt(schedule.alpha(t));
  const double b = -schedule.beta(t) / std::sqrt(1.0 - schedule.abar(t)) * a;
  NetworkEpsJacobian jacobian(network, t, points);
  std::vector<lipschitz::TopSingularValues> norms = lipschitz::top_singular_values(
      jacobian, {lipschitz::AffineCombination{}, lipschitz::AffineCombination{a, b}}, settings,
      start);
  return {std::move(norms[0]), std::move(norms[1])};
}

}  // namespace dpm::diffusion
