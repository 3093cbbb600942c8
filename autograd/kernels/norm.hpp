#pragma once
// Normalisation kernels on raw pointers. x is [B, C, S]: S is the product of the trailing dims
// (1 for [B, C]). Statistics are accumulated in double, each one serially in a fixed order, so
// results do not depend on the thread count. Backward kernels accumulate (+=) into their
// gradients; any gradient pointer may be null (not needed), and so may gamma and beta (no affine).
#include <cstdint>

namespace dpm {

struct NormDims {
  int64_t batch = 1, channels = 1, spatial = 1;
  int64_t numel() const { return batch * channels * spatial; }
};

// Batch norm, training: the batch's per-channel mean [C], biased variance var [C] and
// inv_std [C] = 1 / sqrt(var + eps); out [B, C, S] = (inp - mean) * inv_std * gamma + beta.
void batch_norm_forward_train(float* out, float* mean, float* var, float* inv_std, const float* inp,
                              const float* gamma, const float* beta, const NormDims& d, float eps);

// Batch norm, eval: the same with running_mean [C] and running_var [C]; writes the
// inv_std [C] = 1 / sqrt(running_var + eps) it used, for backward.
void batch_norm_forward_eval(float* out, float* inv_std, const float* inp,
                             const float* running_mean, const float* running_var,
                             const float* gamma, const float* beta, const NormDims& d, float eps);

// Accumulates dinp [B, C, S], dgamma [C], dbeta [C] from dout [B, C, S], given the mean [C] and
// inv_std [C] the forward used. training: they are the batch's statistics (functions of inp);
// otherwise they are constants (eval).
void batch_norm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                         const float* inp, const float* mean, const float* inv_std,
                         const float* gamma, const NormDims& d, bool training);

// In place on running_mean [C], running_var [C]: r <- (1 - momentum) r + momentum * stat, from
// the batch mean [C] and biased var [C]; the variance is made unbiased, var * n / (n - 1) with
// n = B * S > 1 (PyTorch's semantics).
void batch_norm_update_running(float* running_mean, float* running_var, const float* mean,
                               const float* var, const NormDims& d, float momentum);

// Synchronised batch norm: the statistics of a channel cover every process of a data-parallel
// group. Each process calls these kernels on its own x [B, C, S]; between them a reducer sums the
// [C, k] doubles over the group (the op in autograd/ops/norm.cpp calls it). Serial per channel,
// parallel over channels, so results do not depend on the thread count.

// The local part of the statistics, stats [C, 3]: per channel {n, sum x, sum x^2} with n = B * S,
// sum x^2 written as sum (x - local mean)^2 + (sum x)^2 / n (see the kernel for why). Summed over
// the group they are the group's {N, sum x, sum x^2}.
void batch_norm_sync_local_stats(double* stats, const float* inp, const NormDims& d);

// From the group's summed stats [C, 3]: its mean [C], biased variance var [C], inv_std [C] =
// 1 / sqrt(var + eps), and out [B, C, S] = (inp - mean) * inv_std * gamma + beta. Needs N >= 1.
void batch_norm_sync_forward(float* out, float* mean, float* var, float* inv_std,
                             const double* stats, const float* inp, const float* gamma,
                             const float* beta, const NormDims& d, float eps);

// batch_norm_update_running with the group's count N = stats[3 c] (stats [C, 3] as above, N > 1)
// in the unbiased variance var * N / (N - 1).
void batch_norm_sync_update_running(float* running_mean, float* running_var, const float* mean,
                                    const float* var, const double* stats, const NormDims& d,
                                    float momentum);

// The local sums of backward, sums [C, 2]: per channel {sum dout, sum dout * xhat} over this
// process's dout [B, C, S], xhat = (inp - mean) * inv_std with the forward's mean, inv_std [C].
void batch_norm_sync_grad_sums(double* sums, const float* dout, const float* inp, const float* mean,
                               const float* inv_std, const NormDims& d);

// Accumulates dgamma [C], dbeta [C] from this process's local_sums [C, 2] (parameter gradients
// are all-reduced by the trainer), and dinp [B, C, S] = gamma inv_std (dout - group_sums[., 0] / N
// - xhat group_sums[., 1] / N) from the group's summed sums [C, 2] and stats [C, 3] (N).
void batch_norm_sync_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                              const float* inp, const float* mean, const float* inv_std,
                              const float* gamma, const double* local_sums,
                              const double* group_sums, const double* stats, const NormDims& d);

// Group norm: `groups` divides C. mean, inv_std [B, groups] over each sample's (C / groups, S)
// block; out [B, C, S] = (inp - mean) * inv_std * gamma[c] + beta[c], gamma, beta [C].
void group_norm_forward(float* out, float* mean, float* inv_std, const float* inp,
                        const float* gamma, const float* beta, const NormDims& d, int64_t groups,
                        float eps);

// Accumulates dinp [B, C, S], dgamma [C], dbeta [C] from dout [B, C, S] and the forward's
// mean, inv_std [B, groups].
void group_norm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                         const float* inp, const float* mean, const float* inv_std,
                         const float* gamma, const NormDims& d, int64_t groups);

}  // namespace dpm
