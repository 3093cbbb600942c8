#pragma once
// Matrix-product kernels on dense row-major arrays, all through dpm::sgemm.
#include <cstdint>

namespace dpm {

// out [batch, M, N] = a [batch, M, K] b [batch, K, N].
// Threads: oneTBB over the batch (one OpenBLAS thread per GEMM); batch 1 runs inline, so its
// GEMM uses OpenBLAS threads.
void matmul_forward(float* out, const float* a, const float* b, int64_t batch, int64_t M, int64_t K,
                    int64_t N);
// Accumulates da [batch, M, K] += dout b^T and db [batch, K, N] += a^T dout (either may be null).
void matmul_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                     int64_t batch, int64_t M, int64_t K, int64_t N);

// out [M, C_out] = inp [M, C_in] weight^T + bias, weight [C_out, C_in], bias [C_out] or null.
// Threads: one GEMM on OpenBLAS threads.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M,
                    int64_t in_features, int64_t out_features);
// Accumulates dinp [M, C_in] += dout weight, dweight [C_out, C_in] += dout^T inp and
// dbias [C_out] += column sums of dout (sum_reduce: double, rows in order); any may be null.
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t M, int64_t in_features, int64_t out_features);

}  // namespace dpm
