// The two-layer network and its linearisation (nn/two_layer.hpp, nn/two_layer_linearization.hpp):
// the module against the closed-form double forward, the Jacobian products against finite
// differences and each other, the NTK against J J^T, kernel regression against gradient descent
// on f_lin run to convergence, and ||f - f_lin|| after a fixed number of GD steps against m.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/rng.hpp"
#include "nn/noise_model.hpp"
#include "nn/optim/sgd.hpp"
#include "nn/two_layer.hpp"
#include "nn/two_layer_linearization.hpp"

using namespace dpm;
using nn::TwoLayerActivation;
using nn::TwoLayerLinearization;

namespace {

nn::TwoLayerOptions options(int64_t dim, int64_t width, TwoLayerActivation activation) {
  nn::TwoLayerOptions o;
  o.dim = dim;
  o.width = width;
  o.activation = activation;
  o.time_features = 3;
  o.steps = 50;
  return o;
}

struct Batch {
  Tensor x;
  std::vector<int64_t> t;
};

Batch batch(int64_t rows, int64_t dim, uint64_t seed) {
  Rng rng(seed);
  Batch b{randn({rows, dim}, rng), {}};
  for (int64_t i = 0; i < rows; ++i) b.t.push_back(rng.integer(int64_t{0}, int64_t{49}));
  return b;
}

std::vector<double> random_vector(size_t size, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(size);
  for (double& x : v) x = rng.normal();
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace

TEST_CASE("the two-layer module is (1/sqrt(m)) A sigma(W [x, e(t)] + b)", "[two_layer]") {
  for (TwoLayerActivation activation : {TwoLayerActivation::relu, TwoLayerActivation::silu}) {
    Rng rng(3);
    auto net = std::make_shared<nn::TwoLayerNet>(options(3, 64, activation), rng);
    const Batch b = batch(7, 3, 11);
    const Tensor out = net->forward(Variable(b.x.view({7, 1, 3})), b.t).data();
    CHECK(out.shape() == Shape{7, 1, 3});
    const TwoLayerLinearization linearization(*net);
    const std::vector<double> reference = linearization.network(
        net->inputs(b.x, b.t), std::vector<double>(linearization.parameter_count(), 0.0));
    for (int64_t i = 0; i < out.numel(); ++i)
      CHECK(out.data()[i] == Approx(reference[i]).margin(1e-5));
    // The features: cos(pi k (i + 1) / T).
    const Tensor e = net->time_features({0, 49});
    CHECK(e.data()[0] == Approx(std::cos(M_PI / 50)));
    CHECK(e.data()[5] == Approx(std::cos(3 * M_PI)));
  }
}

TEST_CASE("the symmetric initialisation starts from the zero function", "[two_layer]") {
  nn::TwoLayerOptions o = options(3, 64, TwoLayerActivation::silu);
  o.init = nn::TwoLayerInit::symmetric;
  Rng rng(8);
  nn::TwoLayerNet net(o, rng);
  const Batch b = batch(6, 3, 9);
  const Tensor out = net.forward(Variable(b.x), b.t).data();
  // Zero up to the GEMM's float rounding of sums of +-terms of size ~1.
  for (int64_t i = 0; i < out.numel(); ++i) CHECK(std::abs(out.data()[i]) < 1e-5f);
  // ... but not a zero network: its first GD step moves it.
  const TwoLayerLinearization lin(net);
  const auto in = lin.inputs(net.inputs(b.x, b.t));
  std::vector<double> grad(lin.parameter_count(), 0.0);
  lin.vjp(in, random_vector(18, 10), grad);
  CHECK(max_abs_difference(lin.jvp(in, grad), std::vector<double>(18, 0.0)) > 0.1);
  o.width = 63;
  CHECK_THROWS_WITH(nn::TwoLayerNet(o, rng), Catch::Contains("even width"));
}

TEST_CASE("the two-layer module rebuilds from its config and rejects bad ones", "[two_layer]") {
  Rng rng(1);
  nn::TwoLayerNet net(options(4, 32, TwoLayerActivation::silu), rng);
  Rng rng2(1);
  auto rebuilt = nn::make_noise_model(net.config(), rng2);
  REQUIRE(rebuilt->config() == net.config());
  rebuilt->load_state_dict(net.state_dict());
  const Batch b = batch(5, 4, 2);
  const Tensor a = net.forward(Variable(b.x), b.t).data();
  const Tensor c = rebuilt->forward(Variable(b.x), b.t).data();
  for (int64_t i = 0; i < a.numel(); ++i) CHECK(a.data()[i] == c.data()[i]);
  CHECK(net.parameter_count() == TwoLayerLinearization(net).parameter_count());
  CHECK_THROWS_WITH(nn::make_noise_model({{"arch", "two_layer"}, {"activation", "tanh"}}, rng),
                    Catch::Contains("activation"));
  CHECK_THROWS_WITH(net.forward(Variable(randn({2, 3}, rng)), {0, 1}),
                    Catch::Contains("4 elements per sample"));
  CHECK_THROWS_WITH(net.forward(Variable(randn({2, 4}, rng)), {0, 50}),
                    Catch::Contains("outside 0..49"));
}

TEST_CASE("J delta matches central differences of the network, J^T is its adjoint",
          "[two_layer]") {
  for (TwoLayerActivation activation : {TwoLayerActivation::relu, TwoLayerActivation::silu}) {
    Rng rng(5);
    nn::TwoLayerNet net(options(3, 48, activation), rng);
    const TwoLayerLinearization lin(net);
    const Batch b = batch(9, 3, 6);
    const Tensor z = net.inputs(b.x, b.t);
    const auto in = lin.inputs(z);
    const std::vector<double> direction = random_vector(lin.parameter_count(), 7);
    const double h = 1e-6;
    std::vector<double> plus(direction.size()), minus(direction.size());
    for (size_t i = 0; i < direction.size(); ++i) {
      plus[i] = h * direction[i];
      minus[i] = -h * direction[i];
    }
    const std::vector<double> f_plus = lin.network(z, plus), f_minus = lin.network(z, minus);
    const std::vector<double> jvp = lin.jvp(in, direction);
    double scale = 0;
    for (double v : jvp) scale = std::max(scale, std::abs(v));
    for (size_t i = 0; i < jvp.size(); ++i)
      CHECK(jvp[i] == Approx((f_plus[i] - f_minus[i]) / (2 * h)).margin(1e-6 * scale));
    // f_lin at delta = 0 is the network at theta_0.
    CHECK(max_abs_difference(in.initial, lin.network(z, std::vector<double>(plus.size()))) <
          1e-12);

    const std::vector<double> r = random_vector(jvp.size(), 8);
    std::vector<double> grad(direction.size(), 0.0);
    lin.vjp(in, r, grad);
    CHECK(dot(grad, direction) == Approx(dot(r, jvp)).epsilon(1e-12));
  }
}

TEST_CASE("the NTK is J J^T", "[two_layer]") {
  Rng rng(9);
  nn::TwoLayerNet net(options(2, 40, TwoLayerActivation::silu), rng);
  const TwoLayerLinearization lin(net);
  const Batch a = batch(4, 2, 1), b = batch(3, 2, 2);
  const auto in_a = lin.inputs(net.inputs(a.x, a.t)), in_b = lin.inputs(net.inputs(b.x, b.t));
  const std::vector<double> theta = lin.ntk(in_a, in_b);  // [8, 6]
  for (int64_t column = 0; column < 6; ++column) {
    std::vector<double> unit(6, 0.0);
    unit[column] = 1.0;
    std::vector<double> grad(lin.parameter_count(), 0.0);
    lin.vjp(in_b, unit, grad);
    const std::vector<double> product = lin.jvp(in_a, grad);
    for (int64_t row = 0; row < 8; ++row)
      CHECK(theta[row * 6 + column] == Approx(product[row]).epsilon(1e-12).margin(1e-12));
  }
}

namespace {

// NtkRegression's predictions at `test` and those of GD on f_lin run until the loss stops moving.
void check_kernel_limit(int64_t width, int64_t train_rows, int64_t rank) {
  Rng rng(12);
  nn::TwoLayerNet net(options(2, width, TwoLayerActivation::silu), rng);
  const TwoLayerLinearization lin(net);
  const Batch train = batch(train_rows, 2, 13), test = batch(4, 2, 14);
  const auto in_train = lin.inputs(net.inputs(train.x, train.t));
  const auto in_test = lin.inputs(net.inputs(test.x, test.t));
  const std::vector<double> labels = random_vector(2 * train_rows, 15);
  const nn::NtkRegression regression(lin, in_train, labels);
  CHECK(regression.rank() == rank);
  const std::vector<double> kernel = regression.predict(in_test);

  // A step below 2 / (the largest eigenvalue of the loss's Hessian 2 Theta / (P N), bounded by
  // its trace) keeps GD stable.
  const std::vector<double> gram = lin.ntk(in_train, in_train);
  double trace = 0;
  for (int64_t i = 0; i < 2 * train_rows; ++i) trace += gram[i * 2 * train_rows + i];
  const double lr = 1.9 * static_cast<double>(2 * train_rows) / (2.0 * trace);
  nn::LinearizedDescent descent(lin, in_train, labels);
  // Until 10 steps move delta by less than 1e-14 of its size (the loss itself stops resolving
  // the slowest direction much earlier).
  for (int step = 0; step < 200000; ++step) {
    const std::vector<double> before = descent.delta();
    for (int inner = 0; inner < 10; ++inner) descent.step(lr);
    double size = 0;
    for (double v : before) size = std::max(size, std::abs(v));
    if (max_abs_difference(before, descent.delta()) < 1e-14 * size) break;
  }
  INFO("width " << width << ", " << train_rows << " inputs: training loss " << descent.loss());
  const std::vector<double> gd = lin.predict(in_test, descent.delta());
  double scale = 0;
  for (double v : kernel) scale = std::max(scale, std::abs(v));
  CHECK(max_abs_difference(gd, kernel) < 1e-7 * scale);
}

}  // namespace

TEST_CASE("kernel regression with the NTK is gradient descent on f_lin run to convergence",
          "[two_layer]") {
  SECTION("more parameters than labels: f_lin interpolates") { check_kernel_limit(256, 5, 10); }
  // 1 x (2 + 3 + 1) + 2 x 1 = 8 parameters for 18 label entries: the least-squares fit nearest
  // theta_0.
  SECTION("fewer parameters than labels: the pseudo-inverse") { check_kernel_limit(1, 9, 8); }
}

TEST_CASE("after a fixed number of GD steps ||f - f_lin|| shrinks as the width grows",
          "[two_layer]") {
  const Batch train = batch(16, 2, 21);
  Rng label_rng(22);
  const Tensor labels = randn({16, 2}, label_rng);
  const std::vector<double> label_values(labels.data(), labels.data() + labels.numel());
  std::vector<double> widths, distances;
  for (int64_t width : {128, 512, 2048, 8192}) {
    Rng rng(23);
    auto net = std::make_shared<nn::TwoLayerNet>(options(2, width, TwoLayerActivation::relu), rng);
    const TwoLayerLinearization lin(*net);
    nn::LinearizedDescent descent(lin, lin.inputs(net->inputs(train.x, train.t)), label_values);
    optim::SGDOptions sgd_options;
    sgd_options.lr = 0.05;
    optim::SGD sgd(net->arena(), sgd_options);
    for (int step = 0; step < 100; ++step) {
      sgd.zero_grad();
      mse_loss(net->forward(Variable(train.x), train.t), Variable(labels)).backward();
      sgd.step();
      descent.step(sgd_options.lr);
    }
    const Tensor f = net->forward(Variable(train.x), train.t).data();
    const std::vector<double> f_lin =
        lin.predict(lin.inputs(net->inputs(train.x, train.t)), descent.delta());
    double sum = 0;
    for (int64_t i = 0; i < f.numel(); ++i) sum += std::pow(f.data()[i] - f_lin[i], 2);
    widths.push_back(static_cast<double>(width));
    distances.push_back(std::sqrt(sum / static_cast<double>(f.numel())));
  }
  for (size_t i = 1; i < distances.size(); ++i) {
    INFO("width " << widths[i] << ": " << distances[i] << " against " << distances[i - 1]);
    CHECK(distances[i] < distances[i - 1]);
  }
  const double rate = std::log(distances.back() / distances.front()) /
                      std::log(widths.back() / widths.front());
  std::printf("||f - f_lin|| (RMS) after 100 GD steps at m = 128..8192: %.3g .. %.3g, "
              "~ m^%.2f\n",
              distances.front(), distances.back(), rate);
}
