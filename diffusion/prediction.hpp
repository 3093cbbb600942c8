#pragma once
// What the network predicts, and the conversions between the three parameterisations.
// With x_t = a x_0 + s eps, a = sqrt(abar_t), s = sqrt(1 - abar_t):
//   eps (the paper's target), x0, and v = a eps - s x_0 (Salimans & Ho 2022).
// Given x_t, each is an affine function of any other: out = c_prediction * prediction + c_xt * x_t
// (e.g. eps = (x_t - a x0) / s, x0 = a x_t - s v, eps = s x_t + a v). The Tensor versions record
// no graph; the Variable versions are differentiable in both the prediction and x_t, for losses
// and for Jacobians of a converted network.
//
// NetworkPredictor turns a trained nn::NoiseModel into the NoisePredictor that samplers,
// denoisers and the bound evaluation use.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "autograd/variable.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/schedule.hpp"
#include "nn/noise_model.hpp"

namespace dpm::diffusion {

enum class PredictionTarget { eps, x0, v };

const char* prediction_target_name(PredictionTarget target);        // "eps", "x0", "v"
PredictionTarget parse_prediction_target(const std::string& name);  // throws listing the names

struct ConversionCoefficients {
  double prediction = 1;
  double x_t = 0;
};
// The coefficients of the conversion from -> to at noise level abar in (0, 1).
ConversionCoefficients conversion_coefficients(PredictionTarget from, PredictionTarget to,
                                               double abar);

// prediction and x_t: [B, ...] of one shape; abar: one value per sample.
Tensor convert_prediction(const Tensor& prediction, PredictionTarget from, PredictionTarget to,
                          const Tensor& x_t, const std::vector<double>& abar);
Variable convert_prediction(const Variable& prediction, PredictionTarget from, PredictionTarget to,
                            const Variable& x_t, const std::vector<double>& abar);

// The regression target of a parameterisation for clean data x0 and noise eps: eps, x0 or
// v = sqrt(abar) eps - sqrt(1 - abar) x0.
Tensor target_value(PredictionTarget target, const Tensor& x0, const Tensor& eps,
                    const std::vector<double>& abar);

struct NetworkPredictorOptions {
  PredictionTarget target = PredictionTarget::eps;  // what the network outputs
  int64_t max_batch = 1024;  // larger batches run in chunks of this many samples
};

// eps from a network: the model runs in eval mode (its previous mode is restored afterwards)
// under NoGradGuard, with the 0-based index t - 1 for every sample (docs/protocol.md, Schedules),
// and its output is converted from options.target to eps.
class NetworkPredictor : public NoisePredictor {
 public:
  NetworkPredictor(std::shared_ptr<nn::NoiseModel> model, Schedule schedule,
                   NetworkPredictorOptions options = {});

  nn::NoiseModel& model() { return *model_; }
  const Schedule& schedule() const { return schedule_; }
  const NetworkPredictorOptions& options() const { return options_; }

  // eps as a differentiable function of x [B, ...]: the forward in eval mode with a graph
  // recorded (for J_eps^T u by a backward pass; not chunked by max_batch), converted to eps.
  // One evaluation.
  Variable eps_graph(const Variable& x, int64_t t);

 private:
  Tensor compute_eps(const Tensor& x, int64_t t) override;
  void check_step(int64_t t) const;
  Tensor eps_of_chunk(const Tensor& x, int64_t t);

  std::shared_ptr<nn::NoiseModel> model_;
  Schedule schedule_;
  NetworkPredictorOptions options_;
};

}  // namespace dpm::diffusion
