#pragma once
// NoisePredictor: eps(x_t, t) for a batch at one step. Samplers and denoisers are written against
// it, so the same algorithm runs with a trained network or with the exact oracle eps* (which
// separates an algorithm's own error from the learning error).
#include <cstdint>

#include "autograd/tensor.hpp"

namespace dpm::diffusion {

class NoisePredictor {
 public:
  virtual ~NoisePredictor() = default;
  // x: [B, ...] at step t (1-based, 1..T). Returns the predicted noise, shaped like x.
  // Records no graph.
  Tensor predict_eps(const Tensor& x, int64_t t) {
    ++evaluations_;
    return compute_eps(x, t);
  }
  // Batched evaluations so far (one per predict_eps call): the cost measure of an estimator.
  int64_t evaluations() const { return evaluations_; }
  void reset_evaluations() { evaluations_ = 0; }

 private:
  virtual Tensor compute_eps(const Tensor& x, int64_t t) = 0;
  int64_t evaluations_ = 0;
};

}  // namespace dpm::diffusion
