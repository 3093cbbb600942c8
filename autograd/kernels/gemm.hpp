#pragma once
// Row-major single-precision GEMM through cblas_sgemm:
//   C[M, N] = alpha * op(A) op(B) + beta * C, op(A) [M, K], op(B) [K, N].
// A is [M, K] (or [K, M] when trans_a), B is [K, N] (or [N, K] when trans_b); all dense.
// Threads: OpenBLAS's own, unless called inside dpm::parallel_for (then one thread).
#include <cstdint>

namespace dpm {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, const float* B, float beta, float* C);

// Same with explicit leading dimensions, for sub-blocks of larger matrices.
void sgemm_ld(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

}  // namespace dpm
