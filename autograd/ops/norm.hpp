#pragma once
// Normalisation layers' functional forms. x is [B, C, *] (any number of trailing dims).
#include <cstdint>
#include <functional>

#include "autograd/variable.hpp"

namespace dpm {

// Sums `values` elementwise over every process of a data-parallel group, in place (the identity
// for a single process): an all-reduce such as MPI_Allreduce(MPI_IN_PLACE, values, count,
// MPI_DOUBLE, MPI_SUM, comm). Every process must get the same sums back. It is a collective:
// every process must reach each call, with the same count.
using StatisticsReducer = std::function<void(double* values, int64_t count)>;

// training: normalise with the batch statistics (biased variance) and, when the running
// tensors are defined, update them in place: r <- (1 - momentum) r + momentum * stat, with the
// unbiased batch variance (PyTorch's semantics). Eval: normalise with the running statistics.
// weight/bias [C] may be undefined (no affine).
//
// reduce (training only; empty, the default, or eval: the above, unchanged): synchronised batch
// statistics (PyTorch's SyncBatchNorm). The batch is the union of every process's x, which may
// differ in B (and even be 1 per process; the group needs more than one value per channel):
// forward makes one reduce call of 3 C doubles (per channel the local count, sum and sum of
// squares) and normalises with the group's mean and biased variance; the running statistics get
// the group's unbiased variance, N / (N - 1). Each backward through the result makes one more
// call of 2 C doubles (the local sums of dy and dy * xhat), so dx holds the group means of both;
// dweight and dbias stay this process's sums (the trainer all-reduces parameter gradients). The
// reducer is copied into the tape. With the identity it equals the unsynchronised op up to
// rounding.
Variable batch_norm(const Variable& x, Tensor running_mean, Tensor running_var,
                    const Variable& weight, const Variable& bias, bool training,
                    float momentum = 0.1f, float eps = 1e-5f, const StatisticsReducer& reduce = {});

// Normalises over (C/groups, *) per sample and group, then applies per-channel weight/bias.
Variable group_norm(const Variable& x, int groups, const Variable& weight, const Variable& bias,
                    float eps = 1e-5f);

}  // namespace dpm
