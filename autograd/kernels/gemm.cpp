#include "autograd/kernels/gemm.hpp"

#include <cblas.h>

#include <limits>
#include <stdexcept>

namespace dpm {
namespace {
blasint checked(int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<blasint>::max())
    throw std::invalid_argument(std::string("sgemm: ") + what + " = " + std::to_string(v) +
                                " outside the BLAS integer range");
  return static_cast<blasint>(v);
}
}  // namespace

void sgemm_ld(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, checked(M, "M"), checked(N, "N"),
              checked(K, "K"), alpha, A, checked(lda, "lda"), B, checked(ldb, "ldb"), beta, C,
              checked(ldc, "ldc"));
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, const float* B, float beta, float* C) {
  sgemm_ld(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}

}  // namespace dpm
