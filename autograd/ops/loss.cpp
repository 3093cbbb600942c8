#include "autograd/ops/loss.hpp"

#include <stdexcept>

#include "autograd/ops/arith.hpp"
#include "autograd/ops/detail.hpp"
#include "autograd/ops/reduce.hpp"

namespace dpm {

Variable mse_loss(const Variable& prediction, const Variable& target) {
  detail::require_defined(prediction, "mse_loss", "prediction");
  detail::require_defined(target, "mse_loss", "target");
  // Equal shapes only: a broadcast target is almost always a bug (e.g. [B, 1] against [B]).
  if (prediction.shape() != target.shape())
    throw std::invalid_argument("mse_loss: prediction shape " + prediction.shape().str() +
                                " differs from target shape " + target.shape().str());
  return mean(square(sub(prediction, target)));
}

}  // namespace dpm
