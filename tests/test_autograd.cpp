// The tape itself: gradient accumulation, graph lifetime, grad mode, gradient buffers, deep
// graphs and bitwise determinism.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"

using dpm::NoGradGuard;
using dpm::Shape;
using dpm::Tensor;
using dpm::Variable;

namespace {

Variable leaf(const std::vector<float>& values) {
  return Variable(Tensor::from_vector(Shape{static_cast<int64_t>(values.size())}, values), true);
}

std::vector<float> grad_of(const Variable& v) {
  return v.grad().to_vector();
}

}  // namespace

TEST_CASE("a value used twice receives both contributions", "[autograd]") {
  Variable x = leaf({1.0f, -2.0f, 0.5f});
  Variable y = dpm::sum(x * x + x);  // dy/dx = 2x + 1
  y.backward();
  CHECK(grad_of(x) == std::vector<float>{3.0f, -3.0f, 2.0f});
  CHECK(y.item() == Approx(1 + 4 + 0.25 + 1 - 2 + 0.5));
}

TEST_CASE("gradients accumulate across backward calls until zeroed", "[autograd]") {
  Variable x = leaf({1.0f, 2.0f});
  dpm::sum(x * 3.0f).backward();
  dpm::sum(x * 3.0f).backward();
  CHECK(grad_of(x) == std::vector<float>{6.0f, 6.0f});
  x.zero_grad();
  dpm::sum(x * x).backward();
  CHECK(grad_of(x) == std::vector<float>{2.0f, 4.0f});
}

TEST_CASE("retain_graph allows a second backward, without it the graph is freed", "[autograd]") {
  Variable x = leaf({1.0f, -3.0f});
  Variable y = dpm::sum(dpm::exp(x) * x);
  y.backward(/*retain_graph=*/true);
  std::vector<float> once = grad_of(x);
  y.backward();
  std::vector<float> twice = grad_of(x);
  for (size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == 2.0f * once[i]);
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("retain_graph"));

  Variable z = dpm::sum(x * x);
  z.backward();
  CHECK_THROWS_WITH(z.backward(), Catch::Contains("retain_graph"));
}

TEST_CASE("detach stops gradients", "[autograd]") {
  Variable x = leaf({2.0f, 5.0f});
  Variable d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.data().shares_storage_with(x.data()));
  dpm::sum(d * x).backward();  // only the direct path: d(x_const * x)/dx = x
  CHECK(grad_of(x) == std::vector<float>{2.0f, 5.0f});
  CHECK_FALSE(d.has_grad());
  CHECK_FALSE(dpm::sum(d * 2.0f).requires_grad());
}

TEST_CASE("NoGradGuard records no graph", "[autograd]") {
  Variable x = leaf({1.0f, 2.0f});
  {
    NoGradGuard no_grad;
    CHECK_FALSE(dpm::grad_mode_enabled());
    Variable y = dpm::sum(dpm::silu(x) * x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK_THROWS_WITH(y.backward(), Catch::Contains("does not require grad"));
  }
  CHECK(dpm::grad_mode_enabled());
  CHECK(dpm::sum(x * x).requires_grad());
}

TEST_CASE("non-leaf gradients are not kept", "[autograd]") {
  Variable x = leaf({1.0f, 2.0f, 3.0f});
  Variable h = x * 2.0f;
  Variable y = dpm::sum(h * h);  // 4 x^2 -> 8x
  y.backward();
  CHECK_FALSE(h.has_grad());
  CHECK_FALSE(y.has_grad());
  CHECK_FALSE(h.is_leaf());
  CHECK(grad_of(x) == std::vector<float>{8.0f, 16.0f, 24.0f});
}

TEST_CASE("a 200000-op chain backpropagates without recursion", "[autograd]") {
  Variable x = leaf({0.75f, -1.5f});
  Variable y = x;
  for (int i = 0; i < 100000; ++i) {
    y = y * 2.0f;  // exact in float, so the expected values are exact too
    y = y * 0.5f;
  }
  Variable loss = dpm::sum(dpm::square(y));
  CHECK(loss.item() == 0.75f * 0.75f + 1.5f * 1.5f);
  loss.backward();
  CHECK(grad_of(x) == std::vector<float>{1.5f, -3.0f});

  // A graph that is dropped without backward (or kept with retain_graph) is freed iteratively.
  Variable kept = x;
  for (int i = 0; i < 200000; ++i) kept = kept + 1.0f;
  dpm::sum(kept).backward(/*retain_graph=*/true);
  CHECK(grad_of(x) == std::vector<float>{2.5f, -2.0f});
  kept = Variable();
  CHECK(x.is_leaf());
}

TEST_CASE("set_grad binds a buffer that backward accumulates into", "[autograd]") {
  Tensor arena = Tensor::zeros(Shape{10});
  Variable x = leaf({1.0f, 2.0f, 3.0f, 4.0f});
  x.set_grad(arena.narrow(0, 3, 4));
  dpm::sum(x * x).backward();
  dpm::sum(x).backward();
  CHECK(x.grad().shares_storage_with(arena));
  CHECK(arena.to_vector() == std::vector<float>{0, 0, 0, 3, 5, 7, 9, 0, 0, 0});
  x.zero_grad();
  CHECK(arena.to_vector() == std::vector<float>(10, 0.0f));

  // A strided view (a column of a matrix) works too.
  Tensor grid = Tensor::zeros(Shape{3, 2});
  Variable w(Tensor::from_vector(Shape{3, 1}, {1, 2, 3}), true);
  w.set_grad(grid.narrow(1, 1, 1));
  dpm::sum(dpm::mul_scalar(w, 5.0f) * w).backward();  // 10 w
  CHECK(grid.to_vector() == std::vector<float>{0, 10, 0, 20, 0, 30});
  CHECK_THROWS_WITH(x.set_grad(Tensor::zeros(Shape{5})), Catch::Contains("[5]"));
}

namespace {

// Output, and gradients of all inputs, of sum(silu(linear(x, W, b))) as raw bytes.
std::vector<std::vector<float>> linear_silu_run(const Tensor& x0, const Tensor& w0,
                                                const Tensor& b0) {
  Variable x(x0.clone(), true), w(w0.clone(), true), b(b0.clone(), true);
  Variable h = dpm::silu(dpm::linear(x, w, b));
  Variable loss = dpm::sum(h);
  std::vector<std::vector<float>> results{h.data().to_vector(), {loss.item()}};
  loss.backward();
  for (const Variable& v : {x, w, b}) results.push_back(v.grad().to_vector());
  return results;
}

bool bitwise_equal(const std::vector<std::vector<float>>& a,
                   const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

}  // namespace

TEST_CASE("the same computation repeats bitwise at a fixed thread count", "[autograd]") {
  dpm::Rng rng(7);
  Tensor x = dpm::randn(Shape{256, 512}, rng);
  Tensor w = dpm::randn(Shape{384, 512}, rng, 0.0f, 0.05f);
  Tensor b = dpm::randn(Shape{384}, rng);
  for (int threads : {1, 2}) {
    INFO("threads = " << threads);
    dpm::set_num_threads(threads);
    auto first = linear_silu_run(x, w, b);
    auto second = linear_silu_run(x, w, b);
    CHECK(bitwise_equal(first, second));
  }
  dpm::set_num_threads(0);
}
