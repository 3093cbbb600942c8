#pragma once
// summary(): a torchinfo-like table of a model: every submodule down to max_depth with its
// type, output shape and parameter count (its own and its children's), then totals.
// Output shapes come from one forward pass with batch 1 under NoGradGuard, in eval mode (so
// BatchNorm running statistics are untouched); the training flag is restored afterwards.
#include <string>

#include "nn/module.hpp"

namespace dpm::nn {

// sample_shape excludes the batch: [1, 64] for a 1-D U-Net, [1, 28, 28] for a 2-D one. The model
// must be a NoiseModel (run at step 0) or a Layer. max_depth < 0 lists every module.
std::string summary(Module& model, const Shape& sample_shape, int max_depth = 4);

}  // namespace dpm::nn
