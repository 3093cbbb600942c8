#pragma once
// The two-layer network linearised at its initial weights theta_0 (docs/score-study.md):
//   f_lin(x, t; theta) = f(x, t; theta_0) + J(x, t; theta_0) (theta - theta_0),
// with the Jacobian products in closed form. For f = A sigma(W z + b) / sqrt(m), h0 = W0 z + b0,
// s = sigma(h0), s' = sigma'(h0) and delta = (dW, db, dA):
//   J delta   = (dA s + A0 (s' . (dW z + db))) / sqrt(m)
//   J^T r     = (dW = g z^T, db = g, dA = r s^T / sqrt(m)),  g = s' . (A0^T r) / sqrt(m)
//   NTK       Theta((z, i), (z', j)) = (delta_ij s . s' + (z . z' + 1) sum_r A0_ir A0_jr s'_r s'_r(z'))
//                                      / m
// and kernel regression with that NTK, the limit of gradient descent on f_lin from theta_0 on a
// squared loss. All in double; parameter vectors are laid out as the network's arena holds them:
// W [m, N + E] row-major, b [m], A [N, m] row-major.
#include <cstdint>
#include <vector>

#include "autograd/tensor.hpp"
#include "nn/two_layer.hpp"

namespace dpm::nn {

class TwoLayerLinearization {
 public:
  // Snapshots theta_0 = the network's current weights.
  explicit TwoLayerLinearization(const TwoLayerNet& network);

  // What J(theta_0) needs of a fixed set of inputs z [P, N + E] (TwoLayerNet::inputs), computed
  // once: a training set's Jacobian products then cost two GEMMs each.
  struct Inputs {
    int64_t rows = 0;                 // P
    std::vector<double> z;            // [P, D]
    std::vector<double> activation;   // [P, m]: sigma(h0)
    std::vector<double> slope;        // [P, m]: sigma'(h0)
    std::vector<double> initial;      // [P, N]: f(theta_0)
  };
  Inputs inputs(const Tensor& z) const;

  int64_t parameter_count() const;  // m (D + 1) + N m
  int64_t output_dim() const { return options_.dim; }
  const TwoLayerOptions& options() const { return options_; }
  const std::vector<double>& initial_parameters() const { return theta0_; }

  // J delta [P, N].
  std::vector<double> jvp(const Inputs& in, const std::vector<double>& delta) const;
  // grad += J^T r for r [P, N].
  void vjp(const Inputs& in, const std::vector<double>& r, std::vector<double>& grad) const;
  // f_lin at theta_0 + delta: initial + J delta, [P, N].
  std::vector<double> predict(const Inputs& in, const std::vector<double>& delta) const;
  // The network itself at theta_0 + delta, in double (the reference the linearisation is
  // measured against). [P, N].
  std::vector<double> network(const Tensor& z, const std::vector<double>& delta) const;
  // Theta(a, b) [P_a N, P_b N], rows (p, i) = p N + i. N^2 GEMMs of P_a x P_b x m.
  std::vector<double> ntk(const Inputs& a, const Inputs& b) const;

 private:
  TwoLayerOptions options_;
  std::vector<double> theta0_;
};

// Full-batch gradient descent on f_lin with the network's loss, the mean squared error over the
// P N label entries (nn's mse_loss): delta <- delta - lr 2 J^T (f_lin - y) / (P N).
class LinearizedDescent {
 public:
  LinearizedDescent(const TwoLayerLinearization& model, TwoLayerLinearization::Inputs train,
                    std::vector<double> labels);  // labels [P, N]
  void step(double lr);
  double loss() const;  // the current mean squared error on the training set
  const std::vector<double>& delta() const { return delta_; }

 private:
  const TwoLayerLinearization& model_;
  TwoLayerLinearization::Inputs train_;
  std::vector<double> labels_;
  std::vector<double> delta_;
};

// Kernel regression with the NTK at theta_0, the limit of LinearizedDescent:
// f(x) = f0(x) + Theta(x, X) Theta(X, X)^+ (Y - f0(X)). With more parameters than label entries
// Theta(X, X) is (generically) invertible and f_lin ends up interpolating the labels; with fewer,
// it is singular and GD ends at the least-squares fit nearest theta_0, which the pseudo-inverse
// gives. The constructor eigendecomposes Theta(X, X) once; predict() then costs one cross kernel
// per call, so large test sets go in chunks.
class NtkRegression {
 public:
  NtkRegression(const TwoLayerLinearization& model, TwoLayerLinearization::Inputs train,
                const std::vector<double>& labels);  // labels [P, N]
  std::vector<double> predict(const TwoLayerLinearization::Inputs& test) const;  // [Q, N]
  int64_t rank() const { return rank_; }  // of Theta(X, X), at most P N

 private:
  const TwoLayerLinearization& model_;
  TwoLayerLinearization::Inputs train_;
  std::vector<double> alpha_;  // [P N]
  int64_t rank_ = 0;
};

}  // namespace dpm::nn
