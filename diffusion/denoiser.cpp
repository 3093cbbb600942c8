#include "diffusion/denoiser.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace dpm::diffusion {
namespace {

constexpr const char* kPosteriorMeanPrefix = "posterior-mean-M";

const char* base_name(EstimatorKind kind) {
  switch (kind) {
    case EstimatorKind::mean_forwarding:
      return "mean-forwarding";
    case EstimatorKind::tweedie:
      return "tweedie";
    case EstimatorKind::posterior_mean:
      return kPosteriorMeanPrefix;
    case EstimatorKind::ddim:
      return "ddim";
  }
  return "unknown";
}

[[noreturn]] void bad_name(const std::string& name, const std::string& why) {
  throw std::invalid_argument(
      "Estimator::parse: '" + name + "': " + why +
      " (expected mean-forwarding, tweedie, ddim or posterior-mean-M<M>, optionally followed by "
      "+authors-offset, +db, +beta)");
}

}  // namespace

std::string Estimator::name() const {
  std::string out = base_name(kind);
  if (kind == EstimatorKind::posterior_mean) out += std::to_string(samples);
  if (authors_offset) out += "+authors-offset";
  if (match_in_db) out += "+db";
  if (kind == EstimatorKind::posterior_mean && variance == ReverseVariance::beta) out += "+beta";
  return out;
}

Estimator Estimator::parse(const std::string& name) {
  Estimator e;
  size_t plus = name.find('+');
  const std::string base = name.substr(0, plus);
  if (base.rfind(kPosteriorMeanPrefix, 0) == 0) {
    e.kind = EstimatorKind::posterior_mean;
    const std::string digits = base.substr(std::string(kPosteriorMeanPrefix).size());
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string::npos || std::stoll(digits) < 1)
      bad_name(name, "M must be a positive integer");
    e.samples = std::stoll(digits);
  } else if (base == "mean-forwarding") {
    e.kind = EstimatorKind::mean_forwarding;
  } else if (base == "tweedie") {
    e.kind = EstimatorKind::tweedie;
  } else if (base == "ddim") {
    e.kind = EstimatorKind::ddim;
  } else {
    bad_name(name, "unknown estimator '" + base + "'");
  }
  while (plus != std::string::npos) {
    size_t next = name.find('+', plus + 1);
    const std::string option =
        name.substr(plus + 1, next == std::string::npos ? next : next - plus - 1);
    if (option == "authors-offset")
      e.authors_offset = true;
    else if (option == "db")
      e.match_in_db = true;
    else if (option == "beta" && e.kind == EstimatorKind::posterior_mean)
      e.variance = ReverseVariance::beta;
    else
      bad_name(name, "unknown option '" + option + "'");
    plus = next;
  }
  return e;
}

Denoised denoise(const Estimator& estimator, const DoubleBatch& y, double snr_assumed,
                 NoisePredictor& predictor, const Schedule& schedule, Rng& rng,
                 const StepCallback& on_step, const BatchPart& part) {
  y.validate("denoise");
  if (!(snr_assumed > 0.0) || !std::isfinite(snr_assumed))
    throw std::invalid_argument("denoise: the assumed SNR must be positive and finite, got " +
                                std::to_string(snr_assumed));
  if (estimator.samples < 1)
    throw std::invalid_argument("denoise: posterior-mean needs M >= 1 samples, got " +
                                std::to_string(estimator.samples));
  Denoised out;
  out.matched_step = schedule.nearest_step(snr_assumed, estimator.match_in_db);
  out.start_step = out.matched_step - (estimator.authors_offset ? 1 : 0);
  const int64_t evaluations_before = predictor.evaluations();

  DoubleBatch x = y;
  const double scale = std::sqrt(snr_assumed / (1.0 + snr_assumed));
  for (double& v : x.values) v *= scale;

  switch (estimator.kind) {
    case EstimatorKind::mean_forwarding:
    case EstimatorKind::ddim: {
      ReverseProcess process;
      process.kind =
          estimator.kind == EstimatorKind::ddim ? ReverseKind::ddim : ReverseKind::mean_forwarding;
      process.part = part;
      out.x_hat =
          run_reverse(process, predictor, schedule, std::move(x), out.start_step, rng, on_step);
      break;
    }
    case EstimatorKind::tweedie:
      // At t_s = 0 (authors' offset at t_hat = 1) x is already the estimate: abar_0 = 1.
      if (out.start_step >= 1)
        x.values = tweedie_x0(schedule, out.start_step, x.values,
                              predictor.predict_eps(x, out.start_step).values);
      out.x_hat = std::move(x);
      break;
    case EstimatorKind::posterior_mean: {
      ReverseProcess process;
      process.kind = ReverseKind::ancestral;
      process.variance = estimator.variance;
      process.part = part;
      out.x_hat = x;
      std::fill(out.x_hat.values.begin(), out.x_hat.values.end(), 0.0);
      for (int64_t m = 0; m < estimator.samples; ++m) {
        DoubleBatch run =
            run_reverse(process, predictor, schedule, x, out.start_step, rng, on_step);
        for (size_t i = 0; i < run.values.size(); ++i) out.x_hat.values[i] += run.values[i];
      }
      for (double& v : out.x_hat.values) v /= static_cast<double>(estimator.samples);
      break;
    }
  }
  out.evaluations = predictor.evaluations() - evaluations_before;
  return out;
}

}  // namespace dpm::diffusion
