#pragma once
// Shape ops. Results are contiguous (reshape of contiguous data shares storage).
#include <vector>

#include "autograd/variable.hpp"

namespace dpm {

Variable reshape(const Variable& a, const Shape& shape);
Variable flatten(const Variable& a, int start_dim = 1);  // [B, ...] -> [B, prod(...)]
Variable permute(const Variable& a, const std::vector<int>& dims);
Variable transpose(const Variable& a, int dim0, int dim1);
Variable concat(const std::vector<Variable>& parts, int dim);
std::vector<Variable> split(const Variable& a, const std::vector<int64_t>& sizes, int dim);
std::vector<Variable> chunk(const Variable& a, int chunks, int dim);  // equal parts, must divide
Variable slice(const Variable& a, int dim, int64_t start, int64_t end);  // [start, end)

}  // namespace dpm
