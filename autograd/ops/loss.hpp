#pragma once
#include "autograd/variable.hpp"

namespace dpm {

// mean((prediction - target)^2) over all elements; shapes must match.
Variable mse_loss(const Variable& prediction, const Variable& target);

}  // namespace dpm
