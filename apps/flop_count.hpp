#pragma once
// Analytic FLOP counts of a model's forward pass, from the layers' weights and output shapes.
// Convention (docs/performance.md): a multiply-add is 2 FLOPs, and only the GEMM-like work is
// counted:
//   Linear  [.., in] -> [.., out]:         2 * rows * in * out
//   ConvNd  Cin -> Cout, kernel k^d:       2 * B * Cout * (output positions) * Cin * k^d
//   SelfAttention over S positions, C ch: 4 * B * S^2 * C (scores and mixing; its projections
//                                          are Linear/Conv children, counted as such)
// Normalisation, activations, FiLM's affine and the optimizer are elementwise and not counted.
// A training step is forward + backward = 3x forward (backward: input and weight gradients, each
// as costly as the forward).
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/shape.hpp"
#include "nn/noise_model.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::cli {

struct LayerFlops {
  std::string name;  // dotted module name ("" for the root)
  std::string type;  // Linear, Conv1d, Conv2d, SelfAttention
  int64_t flops = 0;
};

struct FlopCount {
  std::vector<LayerFlops> layers;  // counted layers, in module order
  int64_t forward = 0;             // their sum
  int64_t training_step() const { return 3 * forward; }
};

// Walks `model`'s modules and counts every layer whose output shape `shapes` recorded (a
// ShapeTrace alive during one forward pass). A module that ran twice is counted once.
FlopCount count_flops(const nn::Module& model, const nn::ShapeRecord& shapes);

// Runs one eval-mode forward of `model` on zeros of `input_shape` (batch first, step 0) under
// NoGradGuard, restoring the training flag, and counts it.
FlopCount count_flops(nn::NoiseModel& model, const Shape& input_shape);

}  // namespace dpm::cli
