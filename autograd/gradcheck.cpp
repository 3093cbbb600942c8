#include "autograd/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "autograd/rng.hpp"

namespace dpm {
namespace {

double projected(const Variable& out, const Tensor& r) {
  Tensor o = out.data().contiguous();
  const float* po = o.data();
  const float* pr = r.data();
  double s = 0;
  for (int64_t i = 0; i < o.numel(); ++i) s += static_cast<double>(pr[i]) * po[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Variable>& inputs,
                          const GradcheckOptions& options) {
  // Fresh leaves so the caller's gradients are untouched.
  std::vector<Variable> leaves;
  for (const Variable& v : inputs) leaves.emplace_back(v.data().clone(), v.requires_grad());

  Variable out = f(leaves);
  Rng rng(options.seed);
  Tensor r = randn(out.shape(), rng);
  out.backward(r);
  std::vector<Tensor> analytic;
  for (const Variable& v : leaves)
    analytic.push_back(v.requires_grad() && v.has_grad() ? v.grad().contiguous()
                                                         : Tensor::zeros(v.shape()));

  GradcheckResult best;
  best.max_abs_error = INFINITY;
  NoGradGuard no_grad;
  for (double step : options.relative_steps) {
    GradcheckResult attempt;
    attempt.step = step;
    attempt.passed = true;
    std::ostringstream report;
    int failures = 0;
    for (size_t k = 0; k < leaves.size(); ++k) {
      if (!leaves[k].requires_grad()) continue;
      float* x = leaves[k].data().data();
      const float* a = analytic[k].data();
      for (int64_t i = 0; i < leaves[k].numel(); ++i) {
        float saved = x[i];
        double h = step * std::max(1.0, std::fabs(static_cast<double>(saved)));
        float plus = static_cast<float>(saved + h), minus = static_cast<float>(saved - h);
        x[i] = plus;
        double sp = projected(f(leaves), r);
        x[i] = minus;
        double sm = projected(f(leaves), r);
        x[i] = saved;
        double numeric = (sp - sm) / (static_cast<double>(plus) - minus);  // the step as rounded
        double analytic_i = a[i];
        double err = std::fabs(analytic_i - numeric);
        attempt.max_abs_error = std::max(attempt.max_abs_error, err);
        if (err > options.atol + options.rtol * std::max(std::fabs(analytic_i), std::fabs(numeric))) {
          attempt.passed = false;
          if (failures++ < 8)
            report << "  input " << k << " element " << i << ": analytic " << analytic_i
                   << ", numeric " << numeric << "\n";
        }
      }
    }
    attempt.report = report.str();
    if (attempt.passed) return attempt;
    if (attempt.max_abs_error < best.max_abs_error) best = attempt;
  }
  best.report = "gradcheck failed at every step size; best (step " + std::to_string(best.step) +
                "):\n" + best.report;
  return best;
}

}  // namespace dpm
