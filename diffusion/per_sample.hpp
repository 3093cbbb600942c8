#pragma once
// Per-sample arithmetic on batches [B, ...]: every diffusion formula applies scalar coefficients
// that depend on each sample's step t (sqrt(abar_t), loss weights), so these helpers take one
// coefficient per sample. Coefficients are doubles and the arithmetic runs in double; results
// are rounded to float32 once.
#include <cstdint>
#include <vector>

#include "autograd/tensor.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

// abar_{t_i} for every sample; throws std::invalid_argument naming `caller` unless each t_i is
// in 1..T.
std::vector<double> abar_at(const Schedule& schedule, const std::vector<int64_t>& steps,
                            const char* caller);

// out_i = a_i x_i + b_i y_i for every sample i; x and y of one shape [B, ...], a and b of size B.
Tensor combine_per_sample(const std::vector<double>& a, const Tensor& x,
                          const std::vector<double>& b, const Tensor& y, const char* caller);

// The coefficients as a [B, 1, ..., 1] tensor of `ndim` dimensions, for broadcasting against
// Variables of shape [B, ...].
Tensor per_sample_column(const std::vector<double>& coefficients, int ndim);

// sum over the elements of sample i of (a_i - b_i)^2, in double; [B].
std::vector<double> squared_distance_per_sample(const Tensor& a, const Tensor& b,
                                                const char* caller);

// B for a batch [B, ...] with B >= 1; throws std::invalid_argument naming `caller` and `what`
// otherwise.
int64_t batch_size_of(const Tensor& x, const char* caller, const char* what);
// Throws std::invalid_argument naming `caller` and `what` unless x is a batch of `count` samples.
void require_per_sample(const Tensor& x, int64_t count, const char* caller, const char* what);

}  // namespace dpm::diffusion
