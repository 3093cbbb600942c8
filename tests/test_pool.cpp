#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "autograd/ops/pool.hpp"
#include "autograd/rng.hpp"

using dpm::Rng;
using dpm::Shape;
using dpm::Tensor;
using dpm::Variable;

namespace {

// A pooling or upsampling case; two_d = false means 1-D of length w (h is then ignored).
struct PoolCase {
  int64_t batch, channels, h, w, factor;
  bool two_d;
};

Shape input_shape(const PoolCase& c) {
  return c.two_d ? Shape{c.batch, c.channels, c.h, c.w} : Shape{c.batch, c.channels, c.w};
}

// The case as planes [N, H, W] with per-axis factors (1-D: H = 1, factor_h = 1).
struct Planes {
  int64_t n, h, w, fh, fw;
};

Planes planes(const PoolCase& c) {
  return {c.batch * c.channels, c.two_d ? c.h : 1, c.w, c.two_d ? c.factor : 1, c.factor};
}

// Direct loops in double: avg pool forward and its backward for dout, over windows of the
// fine H x W grid that fit (the remainder gets no gradient).
struct NaiveAvgPool {
  std::vector<double> out, dinp;
  NaiveAvgPool(const Planes& p, const std::vector<float>& x, const std::vector<float>& dout)
      : out(static_cast<size_t>(p.n * (p.h / p.fh) * (p.w / p.fw))), dinp(x.size()) {
    const int64_t oh_n = p.h / p.fh, ow_n = p.w / p.fw;
    const double area = static_cast<double>(p.fh * p.fw);
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t oh = 0; oh < oh_n; ++oh)
        for (int64_t ow = 0; ow < ow_n; ++ow) {
          const size_t o = static_cast<size_t>((n * oh_n + oh) * ow_n + ow);
          for (int64_t a = 0; a < p.fh; ++a)
            for (int64_t b = 0; b < p.fw; ++b) {
              const size_t i = static_cast<size_t>((n * p.h + oh * p.fh + a) * p.w + ow * p.fw + b);
              out[o] += x[i] / area;
              dinp[i] += dout[o] / area;
            }
        }
  }
};

// Direct loops in double: nearest upsampling forward and its backward for dout.
struct NaiveUpsample {
  std::vector<double> out, dinp;
  NaiveUpsample(const Planes& p, const std::vector<float>& x, const std::vector<float>& dout)
      : out(static_cast<size_t>(p.n * p.h * p.fh * p.w * p.fw)), dinp(x.size()) {
    const int64_t oh_n = p.h * p.fh, ow_n = p.w * p.fw;
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t oh = 0; oh < oh_n; ++oh)
        for (int64_t ow = 0; ow < ow_n; ++ow) {
          const size_t o = static_cast<size_t>((n * oh_n + oh) * ow_n + ow);
          const size_t i = static_cast<size_t>((n * p.h + oh / p.fh) * p.w + ow / p.fw);
          out[o] = x[i];
          dinp[i] += dout[o];
        }
  }
};

void check_close(const char* what, const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / (1e-6 * (1.0 + std::abs(want[i]))));
  INFO(what << ": worst error " << worst << " x the tolerance");
  CHECK(worst <= 1.0);
}

const std::vector<PoolCase> kCases = {
    {1, 1, 1, 7, 2, false}, {3, 3, 1, 9, 3, false}, {3, 16, 1, 64, 2, false},
    {1, 1, 7, 7, 2, true},  {3, 3, 13, 7, 3, true}, {3, 16, 28, 28, 2, true},
    {1, 3, 5, 4, 1, true},  // factor 1 is the identity
};

// Runs op on x, backpropagates dout into a gradient pre-filled with grad0, and compares the
// output and the accumulated gradient with the reference.
template <typename Naive, typename Op>
void check_op(const char* name, const PoolCase& c, Op op, Rng& rng) {
  INFO(name << " on " << input_shape(c).str() << ", factor " << c.factor);
  Variable x(dpm::randn(input_shape(c), rng), true);
  Tensor grad0 = dpm::randn(x.shape(), rng);
  x.grad_buffer().copy_(grad0);
  Variable y = op(x, static_cast<int>(c.factor));
  Tensor dout = dpm::randn(y.shape(), rng);
  const Naive ref(planes(c), x.data().to_vector(), dout.to_vector());
  check_close("forward", y.data().to_vector(), ref.out);
  y.backward(dout);
  std::vector<double> want = ref.dinp;
  const std::vector<float> g0 = grad0.to_vector();
  for (size_t i = 0; i < want.size(); ++i) want[i] += g0[i];
  check_close("accumulated gradient", x.grad().to_vector(), want);
}

}  // namespace

TEST_CASE("avg_pool and upsample_nearest match direct loops, backward accumulates", "[pool]") {
  Rng rng(21);
  for (const PoolCase& c : kCases) {
    if (c.two_d) {
      check_op<NaiveAvgPool>("avg_pool2d", c, dpm::avg_pool2d, rng);
      check_op<NaiveUpsample>("upsample_nearest2d", c, dpm::upsample_nearest2d, rng);
    } else {
      check_op<NaiveAvgPool>("avg_pool1d", c, dpm::avg_pool1d, rng);
      check_op<NaiveUpsample>("upsample_nearest1d", c, dpm::upsample_nearest1d, rng);
    }
  }
}

TEST_CASE("pooling output shapes drop the remainder like PyTorch", "[pool]") {
  Variable x1(Tensor::zeros({2, 3, 7}));
  CHECK(dpm::avg_pool1d(x1).shape() == Shape{2, 3, 3});
  CHECK(dpm::upsample_nearest1d(x1, 3).shape() == Shape{2, 3, 21});
  Variable x2(Tensor::zeros({2, 3, 7, 5}));
  CHECK(dpm::avg_pool2d(x2).shape() == Shape{2, 3, 3, 2});
  CHECK(dpm::upsample_nearest2d(x2).shape() == Shape{2, 3, 14, 10});
  // A transposed (non-contiguous) input pools like its contiguous copy.
  Tensor t = Tensor::from_vector({1, 4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}).transpose(1, 2);
  CHECK(dpm::avg_pool1d(Variable(t)).data().to_vector() == std::vector<float>{2, 6, 3, 7});
}

TEST_CASE("pooling and upsampling pass gradcheck", "[pool][gradcheck]") {
  Rng rng(22);
  auto check = [](const dpm::GradcheckFn& f, const Variable& x) {
    auto result = dpm::gradcheck(f, {x});
    INFO(result.report);
    CHECK(result.passed);
  };
  check([](const std::vector<Variable>& v) { return dpm::avg_pool1d(v[0], 2); },
        Variable(dpm::randn({2, 3, 7}, rng), true));
  check([](const std::vector<Variable>& v) { return dpm::avg_pool2d(v[0], 2); },
        Variable(dpm::randn({2, 2, 5, 5}, rng), true));
  check([](const std::vector<Variable>& v) { return dpm::avg_pool2d(v[0], 3); },
        Variable(dpm::randn({1, 2, 7, 6}, rng), true));
  check([](const std::vector<Variable>& v) { return dpm::upsample_nearest1d(v[0], 2); },
        Variable(dpm::randn({2, 2, 5}, rng), true));
  check([](const std::vector<Variable>& v) { return dpm::upsample_nearest2d(v[0], 2); },
        Variable(dpm::randn({1, 2, 3, 3}, rng), true));
  check([](const std::vector<Variable>& v) { return dpm::upsample_nearest2d(v[0], 3); },
        Variable(dpm::randn({1, 1, 2, 3}, rng), true));
}

TEST_CASE("pooling ops reject bad arguments with clear messages", "[pool]") {
  using Catch::Contains;
  Variable x1(Tensor::zeros({1, 2, 3}));
  Variable x2(Tensor::zeros({1, 2, 3, 3}));
  CHECK_THROWS_WITH(dpm::avg_pool2d(x1),
                    Contains("avg_pool2d: input must be [B, C, H, W]") && Contains("[1, 2, 3]"));
  CHECK_THROWS_WITH(dpm::upsample_nearest1d(x2),
                    Contains("upsample_nearest1d: input must be [B, C, L]"));
  CHECK_THROWS_WITH(dpm::avg_pool1d(x1, 0), Contains("avg_pool1d: factor must be at least 1"));
  CHECK_THROWS_WITH(dpm::upsample_nearest2d(x2, -2),
                    Contains("upsample_nearest2d: factor must be at least 1"));
  CHECK_THROWS_WITH(dpm::avg_pool1d(x1, 4),
                    Contains("avg_pool1d") && Contains("smaller than the pooling factor 4"));
  CHECK_THROWS_WITH(dpm::avg_pool2d(Variable(Tensor::zeros({1, 1, 1, 8}))),
                    Contains("avg_pool2d") && Contains("smaller than the pooling factor 2"));
}
