#include "autograd/kernels/matmul.hpp"

#include <cstring>
#include <vector>

#include "autograd/kernels/broadcast.hpp"
#include "autograd/kernels/gemm.hpp"
#include "autograd/threading.hpp"

namespace dpm {
namespace {

// Calls gemm_for(i) for every batch entry, one entry per parallel task.
template <typename F>
void for_each_batch(int64_t batch, F&& gemm_for) {
  parallel_for(batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) gemm_for(i);
  });
}

}  // namespace

void matmul_forward(float* out, const float* a, const float* b, int64_t batch, int64_t M, int64_t K,
                    int64_t N) {
  for_each_batch(batch, [&](int64_t i) {
    sgemm(false, false, M, N, K, 1.0f, a + i * M * K, b + i * K * N, 0.0f, out + i * M * N);
  });
}

void matmul_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                     int64_t batch, int64_t M, int64_t K, int64_t N) {
  for_each_batch(batch, [&](int64_t i) {
    const float* g = dout + i * M * N;
    if (da) sgemm(false, true, M, K, N, 1.0f, g, b + i * K * N, 1.0f, da + i * M * K);
    if (db) sgemm(true, false, K, N, M, 1.0f, a + i * M * K, g, 1.0f, db + i * K * N);
  });
}

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M,
                    int64_t in_features, int64_t out_features) {
  if (bias) {  // start from the bias rows and let the GEMM add onto them (beta = 1)
    for (int64_t m = 0; m < M; ++m)
      std::memcpy(out + m * out_features, bias, static_cast<size_t>(out_features) * sizeof(float));
  }
  sgemm(false, true, M, out_features, in_features, 1.0f, inp, weight, bias ? 1.0f : 0.0f, out);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t M, int64_t in_features, int64_t out_features) {
  if (dinp) sgemm(false, false, M, in_features, out_features, 1.0f, dout, weight, 1.0f, dinp);
  if (dweight) sgemm(true, false, out_features, in_features, M, 1.0f, dout, inp, 1.0f, dweight);
  if (dbias) {
    std::vector<float> column_sums(static_cast<size_t>(out_features));
    Shape rows{M, out_features};
    sum_reduce(column_sums.data(), dout, 1.0, broadcast_geometry(rows, rows, Shape{out_features}));
    for (int64_t j = 0; j < out_features; ++j) dbias[j] += column_sums[static_cast<size_t>(j)];
  }
}

}  // namespace dpm
