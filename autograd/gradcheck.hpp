#pragma once
// gradcheck: compares the tape's gradients with central finite differences.
// The outputs are projected to a scalar with a fixed random vector r (s = <r, f(x)>, summed in
// double); each input element is perturbed by +-h with h = step * max(1, |x|). An element passes
// when |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|). If some element fails,
// the whole check is retried with the next step size before it reports failure.
#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.hpp"

namespace dpm {

struct GradcheckOptions {
  std::vector<double> relative_steps{1e-3, 3e-3, 1e-2, 3e-4};
  double atol = 2e-3;
  double rtol = 2e-2;
  uint64_t seed = 1234;  // for the projection vector
};

struct GradcheckResult {
  bool passed = false;
  double max_abs_error = 0;  // of the best step tried
  double step = 0;           // the step of that attempt
  std::string report;        // the worst elements, named by input and index
};

using GradcheckFn = std::function<Variable(const std::vector<Variable>&)>;

// Inputs that require grad are checked; others are passed through unchanged. f must be
// deterministic (it is called 2 * numel + 1 times per step size).
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Variable>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace dpm
