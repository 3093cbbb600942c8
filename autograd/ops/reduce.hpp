#pragma once
// Reductions. Sums accumulate in double in a fixed order, so results are bitwise reproducible.
#include <vector>

#include "autograd/variable.hpp"

namespace dpm {

Variable sum(const Variable& a);  // all elements -> shape []
Variable sum(const Variable& a, const std::vector<int>& dims, bool keepdim = false);
Variable mean(const Variable& a);
Variable mean(const Variable& a, const std::vector<int>& dims, bool keepdim = false);

}  // namespace dpm
