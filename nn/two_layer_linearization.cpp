#include "nn/two_layer_linearization.hpp"

#include <cblas.h>
#include <lapacke.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace dpm::nn {
namespace {

// sigma(h) and sigma'(h), elementwise.
void activate(TwoLayerActivation activation, const std::vector<double>& h,
              std::vector<double>& value, std::vector<double>& slope) {
  value.resize(h.size());
  slope.resize(h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    if (activation == TwoLayerActivation::relu) {
      value[i] = h[i] > 0 ? h[i] : 0.0;
      slope[i] = h[i] > 0 ? 1.0 : 0.0;
    } else {
      const double sigmoid = 1.0 / (1.0 + std::exp(-h[i]));
      value[i] = h[i] * sigmoid;
      slope[i] = sigmoid * (1.0 + h[i] * (1.0 - sigmoid));
    }
  }
}

std::vector<double> to_double(const Tensor& t) {
  const Tensor dense = t.contiguous();
  return std::vector<double>(dense.data(), dense.data() + dense.numel());
}

// c [rows, cols] (+)= alpha a b^T for a [rows, k], b [cols, k], all row-major.
void gemm_nt(int64_t rows, int64_t cols, int64_t k, double alpha, const double* a, const double* b,
             double beta, double* c) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
              static_cast<int>(cols), static_cast<int>(k), alpha, a, static_cast<int>(k), b,
              static_cast<int>(k), beta, c, static_cast<int>(cols));
}

}  // namespace

TwoLayerLinearization::TwoLayerLinearization(const TwoLayerNet& network)
    : options_(network.options()) {
  for (const Tensor& part :
       {network.hidden().weight().data(), network.hidden().bias().data(),
        network.output().weight().data()}) {
    const std::vector<double> values = to_double(part);
    theta0_.insert(theta0_.end(), values.begin(), values.end());
  }
}

int64_t TwoLayerLinearization::parameter_count() const {
  return options_.width * (options_.input_size() + 1) + options_.dim * options_.width;
}

TwoLayerLinearization::Inputs TwoLayerLinearization::inputs(const Tensor& z) const {
  const int64_t d = options_.input_size(), m = options_.width, n = options_.dim;
  if (z.ndim() != 2 || z.shape()[1] != d)
    throw std::invalid_argument("TwoLayerLinearization: inputs must be [P, " + std::to_string(d) +
                                "], got " + z.shape().str());
  Inputs in;
  in.rows = z.shape()[0];
  in.z = to_double(z);
  const double* w0 = theta0_.data();
  const double* b0 = w0 + m * d;
  const double* a0 = b0 + m;
  std::vector<double> h(static_cast<size_t>(in.rows * m));
  for (int64_t p = 0; p < in.rows; ++p) std::copy_n(b0, m, h.data() + p * m);
  gemm_nt(in.rows, m, d, 1.0, in.z.data(), w0, 1.0, h.data());
  activate(options_.activation, h, in.activation, in.slope);
  in.initial.assign(static_cast<size_t>(in.rows * n), 0.0);
  gemm_nt(in.rows, n, m, 1.0 / std::sqrt(static_cast<double>(m)), in.activation.data(), a0, 0.0,
          in.initial.data());
  return in;
}

std::vector<double> TwoLayerLinearization::jvp(const Inputs& in,
                                               const std::vector<double>& delta) const {
  const int64_t d = options_.input_size(), m = options_.width, n = options_.dim;
  if (static_cast<int64_t>(delta.size()) != parameter_count())
    throw std::invalid_argument("TwoLayerLinearization::jvp: delta has " +
                                std::to_string(delta.size()) + " entries, expected " +
                                std::to_string(parameter_count()));
  const double* dw = delta.data();
  const double* db = dw + m * d;
  const double* da = db + m;
  const double* a0 = theta0_.data() + m * d + m;
  // pre = s' . (z dW^T + db), [P, m]
  std::vector<double> pre(static_cast<size_t>(in.rows * m));
  for (int64_t p = 0; p < in.rows; ++p) std::copy_n(db, m, pre.data() + p * m);
  gemm_nt(in.rows, m, d, 1.0, in.z.data(), dw, 1.0, pre.data());
  for (size_t i = 0; i < pre.size(); ++i) pre[i] *= in.slope[i];
  const double scale = 1.0 / std::sqrt(static_cast<double>(m));
  std::vector<double> out(static_cast<size_t>(in.rows * n));
  gemm_nt(in.rows, n, m, scale, in.activation.data(), da, 0.0, out.data());
  gemm_nt(in.rows, n, m, scale, pre.data(), a0, 1.0, out.data());
  return out;
}

void TwoLayerLinearization::vjp(const Inputs& in, const std::vector<double>& r,
                                std::vector<double>& grad) const {
  const int64_t d = options_.input_size(), m = options_.width, n = options_.dim;
  if (static_cast<int64_t>(r.size()) != in.rows * n ||
      static_cast<int64_t>(grad.size()) != parameter_count())
    throw std::invalid_argument("TwoLayerLinearization::vjp: r must be [P, N] and grad hold " +
                                std::to_string(parameter_count()) + " entries");
  double* dw = grad.data();
  double* db = dw + m * d;
  double* da = db + m;
  const double* a0 = theta0_.data() + m * d + m;
  const double scale = 1.0 / std::sqrt(static_cast<double>(m));
  const int rows = static_cast<int>(in.rows);
  // dA [N, m] += scale r^T s
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(m),
              rows, scale, r.data(), static_cast<int>(n), in.activation.data(),
              static_cast<int>(m), 1.0, da, static_cast<int>(m));
  // g [P, m] = scale s' . (r A0)
  std::vector<double> g(static_cast<size_t>(in.rows * m));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, static_cast<int>(m),
              static_cast<int>(n), scale, r.data(), static_cast<int>(n), a0, static_cast<int>(m),
              0.0, g.data(), static_cast<int>(m));
  for (size_t i = 0; i < g.size(); ++i) g[i] *= in.slope[i];
  // dW [m, D] += g^T z;  db += column sums of g
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(d),
              rows, 1.0, g.data(), static_cast<int>(m), in.z.data(), static_cast<int>(d), 1.0, dw,
              static_cast<int>(d));
  for (int64_t p = 0; p < in.rows; ++p)
    for (int64_t r_index = 0; r_index < m; ++r_index) db[r_index] += g[p * m + r_index];
}

std::vector<double> TwoLayerLinearization::predict(const Inputs& in,
                                                   const std::vector<double>& delta) const {
  std::vector<double> out = jvp(in, delta);
  for (size_t i = 0; i < out.size(); ++i) out[i] += in.initial[i];
  return out;
}

std::vector<double> TwoLayerLinearization::network(const Tensor& z_tensor,
                                                   const std::vector<double>& delta) const {
  const int64_t d = options_.input_size(), m = options_.width, n = options_.dim;
  if (static_cast<int64_t>(delta.size()) != parameter_count())
    throw std::invalid_argument("TwoLayerLinearization::network: delta has the wrong size");
  std::vector<double> theta = theta0_;
  for (size_t i = 0; i < theta.size(); ++i) theta[i] += delta[i];
  const std::vector<double> z = to_double(z_tensor);
  const int64_t rows = z_tensor.shape()[0];
  std::vector<double> h(static_cast<size_t>(rows * m));
  for (int64_t p = 0; p < rows; ++p) std::copy_n(theta.data() + m * d, m, h.data() + p * m);
  gemm_nt(rows, m, d, 1.0, z.data(), theta.data(), 1.0, h.data());
  std::vector<double> value, slope;
  activate(options_.activation, h, value, slope);
  std::vector<double> out(static_cast<size_t>(rows * n));
  gemm_nt(rows, n, m, 1.0 / std::sqrt(static_cast<double>(m)), value.data(),
          theta.data() + m * d + m, 0.0, out.data());
  return out;
}

std::vector<double> TwoLayerLinearization::ntk(const Inputs& a, const Inputs& b) const {
  const int64_t d = options_.input_size(), m = options_.width, n = options_.dim;
  const double* a0 = theta0_.data() + m * d + m;
  // (z . z' + 1) and s . s', [P_a, P_b]
  std::vector<double> inner(static_cast<size_t>(a.rows * b.rows), 1.0);
  gemm_nt(a.rows, b.rows, d, 1.0, a.z.data(), b.z.data(), 1.0, inner.data());
  std::vector<double> features(static_cast<size_t>(a.rows * b.rows));
  gemm_nt(a.rows, b.rows, m, 1.0, a.activation.data(), b.activation.data(), 0.0, features.data());
  // u_i = s'_a . A0_i, v_j = s'_b . A0_j; their products give sum_r A0_ir A0_jr s'_r s'_r(z').
  auto weighted = [&](const Inputs& in, int64_t i) {
    std::vector<double> u(static_cast<size_t>(in.rows * m));
    for (int64_t p = 0; p < in.rows; ++p)
      for (int64_t r = 0; r < m; ++r) u[p * m + r] = in.slope[p * m + r] * a0[i * m + r];
    return u;
  };
  std::vector<std::vector<double>> v(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) v[j] = weighted(b, j);
  const int64_t cols = b.rows * n;
  std::vector<double> theta(static_cast<size_t>(a.rows * n * cols));
  std::vector<double> block(static_cast<size_t>(a.rows * b.rows));
  const double inv_m = 1.0 / static_cast<double>(m);
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<double> u = weighted(a, i);
    for (int64_t j = 0; j < n; ++j) {
      gemm_nt(a.rows, b.rows, m, 1.0, u.data(), v[j].data(), 0.0, block.data());
      for (int64_t p = 0; p < a.rows; ++p)
        for (int64_t q = 0; q < b.rows; ++q) {
          const int64_t pq = p * b.rows + q;
          theta[(p * n + i) * cols + q * n + j] =
              inv_m * ((i == j ? features[pq] : 0.0) + inner[pq] * block[pq]);
        }
    }
  }
  return theta;
}

LinearizedDescent::LinearizedDescent(const TwoLayerLinearization& model,
                                     TwoLayerLinearization::Inputs train,
                                     std::vector<double> labels)
    : model_(model),
      train_(std::move(train)),
      labels_(std::move(labels)),
      delta_(static_cast<size_t>(model.parameter_count()), 0.0) {
  if (static_cast<int64_t>(labels_.size()) != train_.rows * model.output_dim())
    throw std::invalid_argument("LinearizedDescent: labels must be [P, N]");
}

void LinearizedDescent::step(double lr) {
  std::vector<double> residual = model_.predict(train_, delta_);
  const double scale = 2.0 / static_cast<double>(residual.size());
  for (size_t i = 0; i < residual.size(); ++i) residual[i] = scale * (residual[i] - labels_[i]);
  std::vector<double> grad(delta_.size(), 0.0);
  model_.vjp(train_, residual, grad);
  for (size_t i = 0; i < delta_.size(); ++i) delta_[i] -= lr * grad[i];
}

double LinearizedDescent::loss() const {
  const std::vector<double> prediction = model_.predict(train_, delta_);
  double sum = 0;
  for (size_t i = 0; i < prediction.size(); ++i)
    sum += (prediction[i] - labels_[i]) * (prediction[i] - labels_[i]);
  return sum / static_cast<double>(prediction.size());
}

NtkRegression::NtkRegression(const TwoLayerLinearization& model,
                             TwoLayerLinearization::Inputs train,
                             const std::vector<double>& labels)
    : model_(model), train_(std::move(train)) {
  const int64_t size = train_.rows * model.output_dim();
  if (static_cast<int64_t>(labels.size()) != size)
    throw std::invalid_argument("NtkRegression: labels must be [P, N]");
  std::vector<double> gram = model.ntk(train_, train_);
  std::vector<double> eigenvalues(static_cast<size_t>(size));
  const lapack_int info =
      LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', static_cast<lapack_int>(size), gram.data(),
                     static_cast<lapack_int>(size), eigenvalues.data());
  if (info != 0)
    throw std::runtime_error("NtkRegression: the eigendecomposition of the NTK failed (LAPACK "
                             "dsyevd info " + std::to_string(info) + ")");
  // alpha = Theta^+ (Y - f0): Theta's columns hold its eigenvectors; eigenvalues below the
  // pseudo-inverse's usual cutoff (size x machine epsilon x the largest) count as 0.
  const double cutoff =
      static_cast<double>(size) * std::numeric_limits<double>::epsilon() * eigenvalues.back();
  std::vector<double> residual(labels.size()), projected(labels.size(), 0.0);
  for (size_t i = 0; i < labels.size(); ++i) residual[i] = labels[i] - train_.initial[i];
  cblas_dgemv(CblasRowMajor, CblasTrans, static_cast<int>(size), static_cast<int>(size), 1.0,
              gram.data(), static_cast<int>(size), residual.data(), 1, 0.0, projected.data(), 1);
  for (int64_t k = 0; k < size; ++k) {
    if (eigenvalues[k] > cutoff) {
      projected[k] /= eigenvalues[k];
      ++rank_;
    } else {
      projected[k] = 0.0;
    }
  }
  alpha_.assign(labels.size(), 0.0);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(size), static_cast<int>(size), 1.0,
              gram.data(), static_cast<int>(size), projected.data(), 1, 0.0, alpha_.data(), 1);
}

std::vector<double> NtkRegression::predict(const TwoLayerLinearization::Inputs& test) const {
  const int64_t size = train_.rows * model_.output_dim();
  const std::vector<double> cross = model_.ntk(test, train_);
  std::vector<double> out = test.initial;
  cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(test.rows * model_.output_dim()),
              static_cast<int>(size), 1.0, cross.data(), static_cast<int>(size), alpha_.data(), 1,
              1.0, out.data(), 1);
  return out;
}

}  // namespace dpm::nn
