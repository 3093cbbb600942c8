#pragma once
// Lipschitz constants (l2 operator norms) of the fixed and per-channel layers (docs/protocol.md,
// Lipschitz facts).
#include <vector>

#include "autograd/tensor.hpp"
#include "nn/batchnorm.hpp"
#include "nn/film.hpp"

namespace dpm::lipschitz {

// max_x |f'(x)|. SiLU: f'' = 0 where x tanh(x / 2) = 2 (x = 2.39936). GELU (exact):
// f'' = phi(x) (2 - x^2) = 0 at x = sqrt(2), so the constant is Phi(sqrt 2) + sqrt(2) phi(sqrt 2).
inline constexpr double kSiluLipschitz = 1.099839320128867;
inline constexpr double kGeluLipschitz = 1.128904145185155;

// AvgPool with kernel = stride = factor averages disjoint blocks of factor^d elements: each
// output row has norm factor^(-d/2) and the rows are orthogonal. 1/sqrt(2) (1-D), 1/2 (2-D).
double avg_pool_lipschitz(int factor, int spatial_dims);
// Nearest upsampling copies each element factor^d times: factor^(d/2). sqrt(2) (1-D), 2 (2-D).
double upsample_nearest_lipschitz(int factor, int spatial_dims);

// BatchNorm in eval mode is the per-channel affine map gamma_c (x - mean_c) / sqrt(var_c + eps)
// + beta_c: max_c |gamma_c| / sqrt(running_var_c + eps).
double batchnorm_eval_lipschitz(const nn::BatchNorm& batchnorm);

// FiLM at a fixed t is h -> h (1 + scale(t)) + shift(t), a per-channel scaling:
// max_c |1 + scale_c(t)|. One value per row of temb [G, time_dim] (the time embeddings the
// FiLM sees, one per t), measured as FiLM(1) - FiLM(0) so it follows FiLM's own definition.
std::vector<double> film_lipschitz(nn::FiLM& film, const Tensor& temb);

}  // namespace dpm::lipschitz
