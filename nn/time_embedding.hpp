#pragma once
// SinusoidalTimeEmbedding (docs/protocol.md, The U-Net): for an integer step index i and
// size = 2 * half, f_k = exp(-ln(10000) k / (half - 1)), k = 0..half-1,
// emb(i) = [sin(i f_k), cos(i f_k)].
// Constant input to the network (no parameters, no gradient).
#include <cstdint>
#include <vector>

#include "nn/module.hpp"

namespace dpm::nn {

class SinusoidalTimeEmbedding : public Module {
 public:
  explicit SinusoidalTimeEmbedding(int64_t size);  // even, >= 4
  // steps: one 0-based step index (>= 0) per sample -> [B, size].
  Variable forward(const std::vector<int64_t>& steps);

  int64_t size() const { return size_; }

 private:
  int64_t size_;
};

}  // namespace dpm::nn
