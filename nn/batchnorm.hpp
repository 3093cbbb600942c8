#pragma once
// BatchNorm over [B, C, *] (PyTorch's BatchNorm1d and BatchNorm2d are this one class): affine
// weight (1) and bias (0), both without weight decay; buffers running_mean (0), running_var (1)
// and num_batches_tracked. Training normalises with batch statistics and updates the running
// ones (momentum, unbiased variance); eval normalises with the running statistics.
//
// num_batches_tracked is a float tensor of shape [] (Tensor is float-only; PyTorch stores an
// int64): exact up to 2^24 batches, and a checkpoint converter must cast it.
//
// Data-parallel training (PyTorch's SyncBatchNorm): set_statistics_reducer(reduce) with a
// reducer that sums over the processes of the group (an MPI all-reduce; see StatisticsReducer in
// autograd/ops/norm.hpp) makes training forward normalise with the whole group's batch
// statistics, update the running ones with them (identical on every process), and makes backward
// exact for the group's batch. Each training forward and each backward through it is then a
// collective (one reduce call each): every process must run them in step. Eval mode uses the
// running statistics and never calls the reducer. The weight and bias gradients stay
// per-process; the trainer all-reduces them with the other parameters. An empty reducer (the
// default) means per-process statistics.
#include <utility>

#include "autograd/ops/norm.hpp"
#include "nn/layer.hpp"

namespace dpm::nn {

class BatchNorm : public Layer {
 public:
  explicit BatchNorm(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f);
  Variable forward(const Variable& x) override;
  // Eval mode: max_c |gamma_c| / sqrt(running_var_c + eps), as measured.
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;

  int64_t num_features() const { return num_features_; }
  float eps() const { return eps_; }
  Variable weight() const { return weight_; }
  Variable bias() const { return bias_; }
  Tensor running_mean() const { return running_mean_; }
  Tensor running_var() const { return running_var_; }
  Tensor num_batches_tracked() const { return num_batches_tracked_; }

  // Empty: per-process statistics (the default). Not part of the state dict.
  void set_statistics_reducer(StatisticsReducer reduce) { reduce_ = std::move(reduce); }
  bool synchronised() const { return static_cast<bool>(reduce_); }

 private:
  int64_t num_features_;
  float eps_, momentum_;
  StatisticsReducer reduce_;
  Variable weight_, bias_;
  Tensor running_mean_, running_var_, num_batches_tracked_;
};

using BatchNorm1d = BatchNorm;
using BatchNorm2d = BatchNorm;

}  // namespace dpm::nn
