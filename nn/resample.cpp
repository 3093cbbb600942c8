#include "nn/resample.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/pool.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {
namespace {

int checked_factor(const char* layer, int factor) {
  if (factor <= 0)
    throw std::invalid_argument(std::string(layer) + ": factor must be positive, got " +
                                std::to_string(factor));
  return factor;
}

// Picks the 1-D or 2-D op by the input's rank.
Variable by_rank(const char* layer, const Variable& x, Variable (*one_d)(const Variable&, int),
                 Variable (*two_d)(const Variable&, int), int factor) {
  if (x.ndim() == 3) return one_d(x, factor);
  if (x.ndim() == 4) return two_d(x, factor);
  throw std::invalid_argument(std::string(layer) +
                              ": input must be [B, C, L] or [B, C, H, W], got shape " +
                              x.shape().str());
}

int seen_spatial_dims(const Module& layer, int last_spatial_dims) {
  if (last_spatial_dims == 0)
    throw std::logic_error(layer.type_name() +
                           ": has not run yet, and its Lipschitz constant depends on the input's "
                           "rank (run one forward first)");
  return last_spatial_dims;
}

}  // namespace

AvgPool::AvgPool(int factor) : Layer("AvgPool"), factor_(checked_factor("AvgPool", factor)) {}

Variable AvgPool::forward(const Variable& x) {
  Variable y = by_rank("AvgPool", x, &avg_pool1d, &avg_pool2d, factor_);
  last_spatial_dims_ = x.ndim() - 2;
  return trace_output(*this, y);
}

double AvgPool::lipschitz_bound(const lipschitz::LayerNorms&) const {
  return lipschitz::avg_pool_lipschitz(factor_, seen_spatial_dims(*this, last_spatial_dims_));
}

Upsample::Upsample(int factor) : Layer("Upsample"), factor_(checked_factor("Upsample", factor)) {}

Variable Upsample::forward(const Variable& x) {
  Variable y = by_rank("Upsample", x, &upsample_nearest1d, &upsample_nearest2d, factor_);
  last_spatial_dims_ = x.ndim() - 2;
  return trace_output(*this, y);
}

double Upsample::lipschitz_bound(const lipschitz::LayerNorms&) const {
  return lipschitz::upsample_nearest_lipschitz(factor_,
                                               seen_spatial_dims(*this, last_spatial_dims_));
}

}  // namespace dpm::nn
