#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/inverse/operators.hpp"
#include "diffusion/inverse/posterior.hpp"
#include "nn/lipschitz/singular_values.hpp"

using dpm::Rng;
using dpm::datasets::Gmm;
using namespace dpm::diffusion::inverse;

namespace {

std::vector<double> random_vector(int64_t size, Rng& rng) {
  std::vector<double> v(static_cast<size_t>(size));
  for (double& x : v) x = rng.normal();
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

double max_abs(const std::vector<double>& a) {
  double top = 0.0;
  for (double v : a) top = std::max(top, std::abs(v));
  return top;
}

// One of every operator, at sizes small enough for dense checks.
std::vector<std::unique_ptr<MeasurementOperator>> all_operators() {
  std::vector<std::unique_ptr<MeasurementOperator>> ops;
  ops.push_back(std::make_unique<IdentityOperator>(7));
  ops.push_back(std::make_unique<MaskOperator>(MaskOperator::random(20, 0.3, 5)));
  ops.push_back(std::make_unique<MaskOperator>(MaskOperator::centred_box({2, 6, 5}, 3, 2)));
  ops.push_back(std::make_unique<SeparableImageOperator>(make_super_resolution({2, 4, 6}, 2)));
  ops.push_back(std::make_unique<SeparableImageOperator>(make_super_resolution({1, 8, 4}, 4)));
  ops.push_back(std::make_unique<SeparableImageOperator>(make_gaussian_blur({2, 6, 7}, 1.2)));
  ops.push_back(std::make_unique<SeparableImageOperator>(make_uniform_blur({1, 10, 5})));
  ops.push_back(
      std::make_unique<SeparableImageOperator>(make_gaussian_blur({2, 12, 10}, 1.5, 3e-2)));
  ops.push_back(std::make_unique<DenseOperator>(make_compressed_sensing(5, 12, 3)));
  return ops;
}

// [rows, cols] row-major product of row-major a [rows, inner] and b [inner, cols].
std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t rows,
                           int64_t inner, int64_t cols) {
  std::vector<double> out(static_cast<size_t>(rows * cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t l = 0; l < inner; ++l)
      for (int64_t j = 0; j < cols; ++j) out[i * cols + j] += a[i * inner + l] * b[l * cols + j];
  return out;
}

std::vector<double> transpose(const std::vector<double>& a, int64_t rows, int64_t cols) {
  std::vector<double> t(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

std::vector<double> identity(int64_t n) {
  std::vector<double> eye(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) eye[i * n + i] = 1.0;
  return eye;
}

// A map of the operator applied to the n standard basis vectors, as the dense matrix whose
// columns are the images: [out, n].
std::vector<double> columns_of(
    MeasurementOperator& op, int64_t n, int64_t out,
    const std::function<std::vector<double>(const std::vector<double>&)>& map) {
  ScopedBatch scope(op, n);
  return transpose(map(identity(n)), n, out);
}

// Pseudo-inverse [n, m] from LAPACK's SVD with the cutoff MeasurementOperator documents.
std::vector<double> dense_pinv(const std::vector<double>& a, int64_t m, int64_t n) {
  DenseSvd svd = dense_svd(a, m, n, "dense_pinv");
  const double top = *std::max_element(svd.s.begin(), svd.s.end());
  const double cutoff =
      static_cast<double>(std::max(m, n)) * std::numeric_limits<double>::epsilon() * top;
  std::vector<double> pinv(static_cast<size_t>(n * m), 0.0);
  for (size_t k = 0; k < svd.s.size(); ++k) {
    if (svd.s[k] <= cutoff) continue;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j)
        pinv[i * m + j] += svd.vt[k * n + i] * svd.u[j * m + k] / svd.s[k];
  }
  return pinv;
}

}  // namespace

TEST_CASE("every operator's adjoint satisfies <A x, y> = <x, A^T y>", "[inverse]") {
  Rng rng(11);
  for (auto& op : all_operators()) {
    INFO(op->name());
    op->set_batch(3);
    const std::vector<double> x = random_vector(3 * op->input_dim(), rng);
    const std::vector<double> y = random_vector(3 * op->output_dim(), rng);
    const double left = dot(op->apply(x), y), right = dot(x, op->adjoint(y));
    CHECK(std::abs(left - right) <= 1e-12 * (std::abs(left) + 1.0));
  }
}

// The operators are dpm::LinearOperators: the shared norm solver measures them like any layer or
// Jacobian, and finds the largest of the singular values they know in closed form.
TEST_CASE("the shared solver finds every operator's largest singular value", "[inverse]") {
  for (auto& op : all_operators()) {
    INFO(op->name());
    op->set_batch(2);  // every row the same map
    const std::vector<double> s = op->singular_values();
    const double largest = *std::max_element(s.begin(), s.end());
    const dpm::lipschitz::TopSingularValues measured = dpm::lipschitz::top_singular_value(
        *op, {.tolerance = 1e-12, .max_iterations = 200, .max_subspace = 200});
    for (const double sigma : measured.sigma) CHECK(sigma == Approx(largest).epsilon(1e-9));
  }
}

TEST_CASE("dense_matrix matches apply column by column and its SVD reconstructs it", "[inverse]") {
  Rng rng(12);
  for (auto& op : all_operators()) {
    INFO(op->name());
    const int64_t m = op->output_dim(), n = op->input_dim();
    op->set_batch(2);
    const std::vector<double> a = dense_matrix(*op);
    CHECK(op->batch() == 2);
    for (int64_t j = 0; j < n; ++j) {
      ScopedBatch one(*op, 1);
      std::vector<double> basis(static_cast<size_t>(n), 0.0);
      basis[j] = 1.0;
      const std::vector<double> column = op->apply(basis);
      for (int64_t i = 0; i < m; ++i) REQUIRE(a[i * n + j] == column[i]);
    }
    // A x on random rows: the batch path against the dense product.
    const std::vector<double> x = random_vector(2 * n, rng);
    CHECK(max_abs_diff(op->apply(x), matmul(x, transpose(a, m, n), 2, n, m)) <= 1e-12);

    const DenseSvd svd = dense_svd(a, m, n, "test");
    std::vector<double> us(static_cast<size_t>(m * n), 0.0);  // U_k diag(s), padded to [m, n]
    for (int64_t i = 0; i < m; ++i)
      for (size_t k = 0; k < svd.s.size(); ++k) us[i * n + k] = svd.u[i * m + k] * svd.s[k];
    CHECK(max_abs_diff(matmul(us, svd.vt, m, n, n), a) <= 1e-12);
  }
}

TEST_CASE("closed-form SVD and pseudo-inverse match dense LAPACK", "[inverse]") {
  Rng rng(13);
  for (auto& op : all_operators()) {
    INFO(op->name());
    REQUIRE(op->has_svd());
    const int64_t m = op->output_dim(), n = op->input_dim();
    const std::vector<double> a = dense_matrix(*op);

    std::vector<double> s = op->singular_values(), reference = dense_svd(a, m, n, "test").s;
    REQUIRE(s.size() == reference.size());
    std::sort(s.begin(), s.end());
    std::sort(reference.begin(), reference.end());
    CHECK(max_abs_diff(s, reference) <= 1e-12);

    // U [m, m] and V [n, n] as dense matrices: orthogonal, inverse to U^T and V^T, and
    // U_k diag(s) V_k^T = A in the operator's own order of s.
    const std::vector<double> u =
        columns_of(*op, m, m, [&](const auto& v) { return op->apply_u(v); });
    const std::vector<double> v =
        columns_of(*op, n, n, [&](const auto& z) { return op->apply_v(z); });
    const std::vector<double> ut =
        columns_of(*op, m, m, [&](const auto& w) { return op->apply_ut(w); });
    const std::vector<double> vt =
        columns_of(*op, n, n, [&](const auto& w) { return op->apply_vt(w); });
    CHECK(max_abs_diff(matmul(transpose(u, m, m), u, m, m, m), identity(m)) <= 1e-12);
    CHECK(max_abs_diff(matmul(transpose(v, n, n), v, n, n, n), identity(n)) <= 1e-12);
    CHECK(max_abs_diff(ut, transpose(u, m, m)) <= 1e-12);
    CHECK(max_abs_diff(vt, transpose(v, n, n)) <= 1e-12);
    const std::vector<double> singular = op->singular_values();
    std::vector<double> us(static_cast<size_t>(m * n), 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (size_t k = 0; k < singular.size(); ++k) us[i * n + k] = u[i * m + k] * singular[k];
    CHECK(max_abs_diff(matmul(us, vt, m, n, n), a) <= 1e-12);

    op->set_batch(2);
    const std::vector<double> y = random_vector(2 * m, rng);
    const std::vector<double> expected = matmul(y, transpose(dense_pinv(a, m, n), n, m), 2, m, n);
    CHECK(max_abs_diff(op->pseudo_inverse(y), expected) <= 1e-9 * (max_abs(expected) + 1.0));
    CHECK(max_abs_diff(least_squares(*op, y), expected) <= 1e-9 * (max_abs(expected) + 1.0));
  }
}

TEST_CASE("super-resolution of a constant image is constant, blur keeps a constant interior",
          "[inverse]") {
  const ImageShape shape{2, 12, 16};
  const std::vector<double> image(static_cast<size_t>(shape.numel()), 0.7);
  for (int64_t factor : {2, 4}) {
    SeparableImageOperator sr = make_super_resolution(shape, factor);
    CHECK(sr.output_shape().height == shape.height / factor);
    for (double v : sr.apply(image)) CHECK(v == Approx(0.7).epsilon(1e-14));
  }
  for (SeparableImageOperator blur : {make_gaussian_blur(shape, 1.5), make_uniform_blur(shape)}) {
    INFO(blur.name());
    const std::vector<double> out = blur.apply(image);
    const int64_t radius = kBlurTaps / 2;
    for (int64_t c = 0; c < shape.channels; ++c)
      for (int64_t i = 0; i < shape.height; ++i)
        for (int64_t j = 0; j < shape.width; ++j) {
          const double v = out[(c * shape.height + i) * shape.width + j];
          const bool interior =
              i >= radius && i < shape.height - radius && j >= radius && j < shape.width - radius;
          if (interior)
            CHECK(v == Approx(0.7).epsilon(1e-14));
          else
            CHECK(v < 0.7);  // zero boundary: taps outside the image see zeros
        }
  }
}

TEST_CASE(
    "a blur with a singular-value floor zeroes each axis's values below it and keeps the rest",
    "[inverse]") {
  // On [1, H, 1] the column map is the centre tap alone, so A's singular values are the row
  // axis's times that tap: the floor applies to s / tap.
  const double sigma = 1.5, floor = 3e-2;
  double tap_sum = 0.0;
  for (int64_t k = -kBlurTaps / 2; k <= kBlurTaps / 2; ++k)
    tap_sum += std::exp(-static_cast<double>(k * k) / (2 * sigma * sigma));
  const double centre_tap = 1.0 / tap_sum;
  const ImageShape shape{1, 28, 1};
  std::vector<double> exact = make_gaussian_blur(shape, sigma).singular_values();
  std::vector<double> truncated = make_gaussian_blur(shape, sigma, floor).singular_values();
  std::sort(exact.begin(), exact.end());
  std::sort(truncated.begin(), truncated.end());
  REQUIRE(exact.size() == truncated.size());
  int64_t zeroed = 0;
  for (size_t k = 0; k < exact.size(); ++k) {
    INFO("k = " << k << ", exact " << exact[k]);
    if (exact[k] / centre_tap < floor) {
      ++zeroed;
      CHECK(truncated[k] <= 1e-14);
    } else {
      CHECK(truncated[k] == Approx(exact[k]).epsilon(1e-12));
    }
  }
  CHECK(exact.front() < 1e-4);  // why the floor is needed: A^+ would amplify noise by > 1e4
  CHECK(zeroed > 0);
  CHECK(zeroed < static_cast<int64_t>(exact.size()));

  // A^+ of the truncated blur is bounded by 1 / (floor * centre tap), A^+ of the exact one is not.
  SeparableImageOperator blur = make_gaussian_blur(shape, sigma, floor);
  Rng rng(3);
  const std::vector<double> y = random_vector(shape.numel(), rng);
  double norm_y = 0.0, norm_x = 0.0;
  for (double v : y) norm_y += v * v;
  for (double v : blur.pseudo_inverse(y)) norm_x += v * v;
  CHECK(std::sqrt(norm_x) <= std::sqrt(norm_y) / (floor * centre_tap) * (1 + 1e-9));

  CHECK_THROWS_WITH(make_gaussian_blur(shape, sigma, -1.0), Catch::Contains("axis_singular_floor"));
  CHECK_THROWS_WITH(make_uniform_blur(shape, 2.0), Catch::Contains("would zero every"));
}

namespace {

// Two well-separated components in R^3 with different covariances, so the posterior mean is
// far from the LMMSE estimate.
Gmm tiny_gmm() {
  Gmm g;
  g.dim = 3;
  g.components = 2;
  g.weights = {0.35, 0.65};
  g.means = {1.5, -1.0, 0.5, -1.0, 0.8, -0.6};
  g.covariances = {0.30, 0.05,  0.00, 0.05,  0.20, 0.02, 0.00, 0.02, 0.25,
                   0.15, -0.03, 0.01, -0.03, 0.40, 0.00, 0.01, 0.00, 0.10};
  g.validate("tiny_gmm");
  return g;
}

}  // namespace

TEST_CASE("exact posterior mean against self-normalised importance sampling", "[inverse]") {
  const Gmm prior = tiny_gmm();
  DenseOperator op = make_compressed_sensing(2, 3, 21);
  const double sigma_y = 0.6;
  const std::vector<double> y = {0.4, -0.9, 1.1, 0.3};  // two measurements
  const std::vector<double> exact = posterior_mean(prior, op, y, sigma_y);
  const std::vector<double> linear = lmmse(prior, op, y, sigma_y);

  // Estimate sum_i w_i x_i / sum_i w_i, w_i = N(y; A x_i, sigma_y^2 I), x_i from the prior; its
  // delta-method standard error is sqrt(sum_i w_i^2 (x_i - estimate)^2) / sum_i w_i.
  Rng rng(22);
  const int64_t samples = 400000;
  const dpm::Tensor draws = prior.sample(samples, rng);
  std::vector<double> x(draws.data(), draws.data() + samples * 3);
  op.set_batch(samples);
  const std::vector<double> ax = op.apply(x);
  for (int64_t r = 0; r < 2; ++r) {
    std::vector<double> w(static_cast<size_t>(samples));
    double total = 0.0;
    for (int64_t i = 0; i < samples; ++i) {
      const double d0 = y[r * 2] - ax[i * 2], d1 = y[r * 2 + 1] - ax[i * 2 + 1];
      w[i] = std::exp(-(d0 * d0 + d1 * d1) / (2.0 * sigma_y * sigma_y));
      total += w[i];
    }
    for (int64_t j = 0; j < 3; ++j) {
      double estimate = 0.0, spread = 0.0;
      for (int64_t i = 0; i < samples; ++i) estimate += w[i] * x[i * 3 + j];
      estimate /= total;
      for (int64_t i = 0; i < samples; ++i)
        spread += w[i] * w[i] * (x[i * 3 + j] - estimate) * (x[i * 3 + j] - estimate);
      const double standard_error = std::sqrt(spread) / total;
      INFO("row " << r << " coordinate " << j << ": exact " << exact[r * 3 + j] << ", sampled "
                  << estimate << " +- " << standard_error << ", LMMSE " << linear[r * 3 + j]);
      CHECK(standard_error < 0.01);
      // 4.5 standard errors: a false failure over the 6 checks has probability below 5e-5.
      CHECK(std::abs(exact[r * 3 + j] - estimate) <= 4.5 * standard_error);
    }
  }
  // The check above can tell the posterior mean from LMMSE: they differ by many standard errors.
  CHECK(max_abs_diff(exact, linear) > 0.1);
}

TEST_CASE("with one Gaussian component the posterior mean is LMMSE", "[inverse]") {
  Gmm prior = tiny_gmm();
  prior.components = 1;
  prior.weights = {1.0};
  prior.means.resize(3);
  prior.covariances.resize(9);
  Rng rng(31);
  std::vector<std::unique_ptr<MeasurementOperator>> ops;
  ops.push_back(std::make_unique<DenseOperator>(make_compressed_sensing(2, 3, 4)));
  ops.push_back(std::make_unique<MaskOperator>(MaskOperator::random(3, 0.4, 6)));
  ops.push_back(std::make_unique<SeparableImageOperator>(make_gaussian_blur({1, 1, 3}, 0.8)));
  for (auto& op : ops) {
    INFO(op->name());
    const std::vector<double> y = random_vector(4 * op->output_dim(), rng);
    const std::vector<double> exact = posterior_mean(prior, *op, y, 0.3);
    CHECK(max_abs_diff(exact, lmmse(prior, *op, y, 0.3)) <= 1e-12 * (max_abs(exact) + 1.0));
  }
}

TEST_CASE("the posterior mean tends to A^+ y as sigma_y -> 0 for an invertible A", "[inverse]") {
  const Gmm prior = tiny_gmm();
  IdentityOperator op(3);
  const std::vector<double> y = {0.2, -0.4, 1.3};
  CHECK(max_abs_diff(posterior_mean(prior, op, y, 1e-5), least_squares(op, y)) <= 1e-8);
}

TEST_CASE("inverse operators and references reject bad input naming the field", "[inverse]") {
  using Catch::Contains;
  CHECK_THROWS_AS(MaskOperator::random(10, 1.0, 1), std::invalid_argument);
  CHECK_THROWS_WITH(MaskOperator::random(10, 1.0, 1), Contains("missing_fraction"));
  CHECK_THROWS_WITH(MaskOperator::random(10, -0.1, 1), Contains("missing_fraction"));
  CHECK_THROWS_WITH(MaskOperator::centred_box({1, 4, 4}, 4, 4), Contains("box_height"));
  CHECK_THROWS_AS(make_super_resolution({1, 6, 8}, 4), std::invalid_argument);
  CHECK_THROWS_WITH(make_super_resolution({1, 6, 8}, 4), Contains("factor r"));
  CHECK_THROWS_WITH(make_super_resolution({1, 8, 6}, 4), Contains("r = 4"));
  CHECK_THROWS_WITH(make_gaussian_blur({1, 8, 8}, 0.0), Contains("sigma"));
  CHECK_THROWS_WITH(make_compressed_sensing(0, 8, 1), Contains("rows (M)"));

  DenseOperator op = make_compressed_sensing(2, 3, 1);
  CHECK_THROWS_AS(op.apply(std::vector<double>(4)), std::invalid_argument);
  CHECK_THROWS_WITH(op.apply(std::vector<double>(4)), Contains("DenseOperator::apply"));
  CHECK_THROWS_WITH(op.adjoint(std::vector<double>(3)), Contains("DenseOperator::adjoint"));
  CHECK_THROWS_WITH(op.set_batch(0), Contains("rows"));

  const Gmm prior = tiny_gmm();
  const std::vector<double> y = {0.1, 0.2};
  CHECK_THROWS_AS(posterior_mean(prior, op, y, 0.0), std::invalid_argument);
  CHECK_THROWS_WITH(posterior_mean(prior, op, y, 0.0), Contains("sigma_y"));
  CHECK_THROWS_WITH(posterior_mean(prior, op, y, -1.0), Contains("sigma_y"));
  CHECK_THROWS_WITH(lmmse(prior, op, y, 0.0), Contains("sigma_y"));
  CHECK_THROWS_WITH(posterior_mean(prior, op, {0.1, 0.2, 0.3}, 0.5), Contains("y must hold"));
  DenseOperator wide = make_compressed_sensing(2, 5, 1);
  CHECK_THROWS_WITH(posterior_mean(prior, wide, y, 0.5),
                    Contains("input size 5") && Contains("dimension is 3"));
  CHECK_THROWS_WITH(lmmse(prior, wide, y, 0.5), Contains("input size 5"));
  CHECK_THROWS_WITH(least_squares(op, {0.1, 0.2, 0.3}), Contains("y must hold"));
}
