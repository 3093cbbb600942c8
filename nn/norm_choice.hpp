#pragma once
// The normalisation a model uses in its blocks: BatchNorm (the paper's) or GroupNorm.
#include <memory>
#include <string>

#include "nn/layer.hpp"

namespace dpm::nn {

enum class NormKind { batch, group };

struct NormOptions {
  NormKind kind = NormKind::batch;
  int groups = 8;  // GroupNorm only; must divide every normalised channel count
};

std::shared_ptr<Layer> make_norm(const NormOptions& options, int64_t channels);

std::string norm_kind_name(NormKind kind);  // "batch" or "group"
// Throws std::invalid_argument listing the valid names.
NormKind parse_norm_kind(const std::string& name);

}  // namespace dpm::nn
