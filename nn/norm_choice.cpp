#include "nn/norm_choice.hpp"

#include <stdexcept>

#include "nn/batchnorm.hpp"
#include "nn/groupnorm.hpp"

namespace dpm::nn {

std::shared_ptr<Layer> make_norm(const NormOptions& options, int64_t channels) {
  if (options.kind == NormKind::group)
    return std::make_shared<GroupNorm>(options.groups, channels);
  return std::make_shared<BatchNorm>(channels);
}

std::string norm_kind_name(NormKind kind) {
  return kind == NormKind::group ? "group" : "batch";
}

NormKind parse_norm_kind(const std::string& name) {
  if (name == "batch") return NormKind::batch;
  if (name == "group") return NormKind::group;
  throw std::invalid_argument("norm: unknown kind '" + name + "', expected 'batch' or 'group'");
}

}  // namespace dpm::nn
