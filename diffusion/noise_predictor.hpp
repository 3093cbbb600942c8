#pragma once
// NoisePredictor: eps(x_t, t) for a batch at one step. Samplers and denoisers are written against
// it, so the same algorithm runs with a trained network or with the exact oracle eps* (which
// separates an algorithm's own error from the learning error).
#include <cstdint>

#include "autograd/tensor.hpp"
#include "diffusion/double_batch.hpp"

namespace dpm::diffusion {

class NoisePredictor {
 public:
  virtual ~NoisePredictor() = default;
  // x: [B, ...] at step t (1-based, 1..T). Returns the predicted noise, shaped like x.
  // Records no graph.
  Tensor predict_eps(const Tensor& x, int64_t t) {
    count_evaluation();
    return compute_eps(x, t);
  }
  // The same on a batch held in double (the samplers' state); also one evaluation. Predictors
  // that compute in double (the exact oracle) override compute_eps_double so that a whole reverse
  // path runs in double; the default rounds x to float32 and calls compute_eps.
  DoubleBatch predict_eps(const DoubleBatch& x, int64_t t) {
    count_evaluation();
    return compute_eps_double(x, t);
  }
  // Batched evaluations so far (one per predict_eps call): the cost measure of an estimator.
  int64_t evaluations() const { return evaluations_; }
  void reset_evaluations() { evaluations_ = 0; }

 protected:
  // For a predictor's own entry points beyond predict_eps (a forward that records a graph).
  void count_evaluation() { ++evaluations_; }

 private:
  virtual Tensor compute_eps(const Tensor& x, int64_t t) = 0;
  virtual DoubleBatch compute_eps_double(const DoubleBatch& x, int64_t t) {
    return DoubleBatch::from_tensor(compute_eps(x.to_tensor(), t));
  }
  int64_t evaluations_ = 0;
};

}  // namespace dpm::diffusion
