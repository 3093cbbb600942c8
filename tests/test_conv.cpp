#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "autograd/kernels/conv.hpp"
#include "autograd/ops/conv.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"

using dpm::ConvGeometry;
using dpm::PaddingMode;
using dpm::Rng;
using dpm::Shape;
using dpm::Tensor;
using dpm::Variable;

namespace {

constexpr PaddingMode kZeros = PaddingMode::zeros;
constexpr PaddingMode kReplicate = PaddingMode::replicate;

// A conv case; two_d = false means a 1-D conv of length w (h is then ignored).
struct ConvCase {
  int64_t batch, ci, co, h, w, k, stride, pad;
  PaddingMode mode;
  bool two_d;
};

ConvGeometry geometry(const ConvCase& c) {
  ConvGeometry g;
  g.batch = c.batch;
  g.in_channels = c.ci;
  g.out_channels = c.co;
  g.in_w = c.w;
  g.kernel_w = c.k;
  g.stride_w = c.stride;
  g.pad_w = c.pad;
  g.padding = c.mode;
  if (c.two_d) {
    g.in_h = c.h;
    g.kernel_h = c.k;
    g.stride_h = c.stride;
    g.pad_h = c.pad;
  }
  return g;
}

std::vector<float> random_vector(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  rng.fill_uniform(v.data(), n, -1.0f, 1.0f);
  return v;
}

// A double accumulator that also sums |terms|, the scale of the float rounding error.
struct Sums {
  std::vector<double> value, magnitude;
  explicit Sums(int64_t n) : value(static_cast<size_t>(n)), magnitude(static_cast<size_t>(n)) {}
  void add(int64_t i, double term) {
    value[static_cast<size_t>(i)] += term;
    magnitude[static_cast<size_t>(i)] += std::abs(term);
  }
};

// Input index along one axis for padded position i, or -1 for a zero-padded position.
int64_t source_index(int64_t i, int64_t n, PaddingMode mode) {
  if (i >= 0 && i < n) return i;
  return mode == kZeros ? -1 : std::clamp<int64_t>(i, 0, n - 1);
}

// Direct-loop conv forward and all its gradients for a given dout, in double.
struct NaiveConv {
  Sums out, dinp, dweight, dbias;
  NaiveConv(const ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
            const std::vector<float>& b, const std::vector<float>& dout)
      : out(g.batch * g.out_channels * g.out_h() * g.out_w()),
        dinp(static_cast<int64_t>(x.size())),
        dweight(static_cast<int64_t>(w.size())),
        dbias(g.out_channels) {
    const int64_t oh_n = g.out_h(), ow_n = g.out_w();
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t co = 0; co < g.out_channels; ++co)
        for (int64_t oh = 0; oh < oh_n; ++oh)
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            const int64_t o = ((n * g.out_channels + co) * oh_n + oh) * ow_n + ow;
            const double d = dout[static_cast<size_t>(o)];
            out.add(o, b[static_cast<size_t>(co)]);
            dbias.add(co, d);
            for (int64_t ci = 0; ci < g.in_channels; ++ci)
              for (int64_t kh = 0; kh < g.kernel_h; ++kh)
                for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                  int64_t ih = source_index(oh * g.stride_h - g.pad_h + kh, g.in_h, g.padding);
                  int64_t iw = source_index(ow * g.stride_w - g.pad_w + kw, g.in_w, g.padding);
                  if (ih < 0 || iw < 0) continue;
                  const int64_t xi = ((n * g.in_channels + ci) * g.in_h + ih) * g.in_w + iw;
                  const int64_t wi =
                      ((co * g.in_channels + ci) * g.kernel_h + kh) * g.kernel_w + kw;
                  const double xv = x[static_cast<size_t>(xi)], wv = w[static_cast<size_t>(wi)];
                  out.add(o, xv * wv);
                  dinp.add(xi, d * wv);
                  dweight.add(wi, d * xv);
                }
          }
  }
};

// got == prefill + expected up to float rounding of the reference's sums.
void check_matches(const char* what, const std::vector<float>& got, const Sums& expected,
                   const std::vector<float>& prefill) {
  double worst = 0.0;
  size_t worst_index = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = prefill[i] + expected.value[i];
    const double tolerance = 1e-5 * (expected.magnitude[i] + std::abs(prefill[i])) + 1e-6;
    const double ratio = std::abs(got[i] - want) / tolerance;
    if (ratio > worst) {
      worst = ratio;
      worst_index = i;
    }
  }
  INFO(what << ": worst element " << worst_index << " got " << got[worst_index] << ", want "
            << prefill[worst_index] + expected.value[worst_index]);
  CHECK(worst <= 1.0);
}

const std::vector<ConvCase> kCases = {
    // 1-D: batch, ci, co, (h), length, k, stride, pad, mode
    {1, 1, 1, 1, 7, 1, 1, 0, kZeros, false},
    {3, 3, 16, 1, 13, 3, 1, 1, kReplicate, false},
    {3, 16, 3, 1, 13, 3, 2, 1, kZeros, false},
    {1, 64, 16, 1, 7, 3, 2, 2, kReplicate, false},
    {3, 3, 4, 1, 13, 5, 1, 2, kZeros, false},
    {3, 4, 5, 1, 13, 5, 2, 2, kReplicate, false},
    {9, 16, 16, 1, 64, 3, 1, 1, kZeros, false},   // several blocks of several samples
    {3, 1, 3, 1, 2, 3, 1, 2, kReplicate, false},  // padding as wide as the input
    // 2-D
    {1, 1, 1, 7, 7, 1, 1, 0, kZeros, true},
    {3, 3, 16, 7, 13, 3, 1, 1, kReplicate, true},
    {3, 16, 3, 13, 7, 3, 2, 1, kZeros, true},
    {1, 64, 16, 7, 7, 3, 2, 2, kReplicate, true},
    {3, 3, 4, 13, 13, 5, 2, 2, kZeros, true},
    {7, 4, 6, 10, 10, 3, 1, 1, kReplicate, true},  // blocks of 3 samples, the last one short
    {3, 16, 16, 28, 28, 3, 1, 1, kZeros, true},    // one sample per block
    {1, 3, 2, 1, 13, 3, 2, 1, kReplicate, true},   // a 2-D conv on a height-1 image
    // Stride 1, zeros, output as wide as the input: the shifted-plane im2col/col2im
    {3, 5, 4, 13, 7, 3, 1, 1, kZeros, true},
    {2, 3, 5, 9, 11, 5, 1, 2, kZeros, true},
    {2, 3, 4, 3, 3, 5, 1, 2, kZeros, true},  // kernel positions wholly in the padding
    {2, 2, 3, 1, 1, 3, 1, 1, kZeros, true},  // a 1 x 1 image
    {2, 3, 2, 1, 2, 3, 1, 1, kZeros, false},
    {2, 3, 2, 1, 3, 5, 1, 2, kZeros, false},
    // Stride 1, zeros, other widths: the input gradient as a convolution on the generic walk
    {2, 3, 2, 1, 9, 3, 1, 0, kZeros, false},
    {2, 3, 2, 7, 6, 3, 1, 0, kZeros, true},
    {2, 2, 3, 1, 4, 1, 1, 1, kZeros, false},  // padding as wide as the kernel: patch matrix
};

std::string describe(const ConvCase& c) {
  return geometry(c).str();
}

}  // namespace

TEST_CASE("conv kernels match a direct-loop reference, backward accumulates", "[conv]") {
  Rng rng(11);
  for (const ConvCase& c : kCases) {
    const ConvGeometry g = geometry(c);
    INFO(describe(c));
    REQUIRE_NOTHROW(g.validate("test"));
    const int64_t out_numel = g.batch * g.out_channels * g.out_h() * g.out_w();
    auto x = random_vector(g.batch * g.in_channels * g.in_h * g.in_w, rng);
    auto w = random_vector(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, rng);
    auto b = random_vector(g.out_channels, rng);
    auto dout = random_vector(out_numel, rng);
    const NaiveConv ref(g, x, w, b, dout);

    std::vector<float> out(static_cast<size_t>(out_numel));
    dpm::conv2d_forward(out.data(), x.data(), w.data(), b.data(), g);
    check_matches("forward", out, ref.out, std::vector<float>(out.size(), 0.0f));

    // Pre-filled gradients must be added to, not overwritten.
    const auto dinp0 = random_vector(static_cast<int64_t>(x.size()), rng);
    const auto dweight0 = random_vector(static_cast<int64_t>(w.size()), rng);
    const auto dbias0 = random_vector(g.out_channels, rng);
    auto dinp = dinp0, dweight = dweight0, dbias = dbias0;
    dpm::conv2d_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), x.data(), w.data(),
                         g);
    check_matches("dinp", dinp, ref.dinp, dinp0);
    check_matches("dweight", dweight, ref.dweight, dweight0);
    check_matches("dbias", dbias, ref.dbias, dbias0);

    // Each gradient alone (the others null) and the backward-data kernel.
    dweight = dweight0;
    dpm::conv2d_backward(nullptr, dweight.data(), nullptr, dout.data(), x.data(), w.data(), g);
    check_matches("dweight alone", dweight, ref.dweight, dweight0);
    dbias = dbias0;
    dpm::conv2d_backward(nullptr, nullptr, dbias.data(), dout.data(), x.data(), w.data(), g);
    check_matches("dbias alone", dbias, ref.dbias, dbias0);
    dinp = dinp0;
    dpm::conv2d_backward_data(dinp.data(), dout.data(), w.data(), g);
    check_matches("backward_data", dinp, ref.dinp, dinp0);
  }
}

TEST_CASE("conv ops: output shapes and bias-free forward", "[conv]") {
  Rng rng(12);
  Variable x1(dpm::randn({2, 3, 13}, rng));
  Variable w1(dpm::randn({4, 3, 3}, rng));
  CHECK(dpm::conv1d(x1, w1, {}, 2, 1).shape() == Shape{2, 4, 7});
  CHECK(dpm::conv1d(x1, w1).shape() == Shape{2, 4, 11});
  Variable x2(dpm::randn({2, 3, 7, 13}, rng));
  Variable w2(dpm::randn({5, 3, 3, 3}, rng));
  CHECK(dpm::conv2d(x2, w2, {}, 2, 1, kReplicate).shape() == Shape{2, 5, 4, 7});

  // A non-contiguous input gives the same result as its contiguous copy.
  Tensor xt = dpm::randn({2, 13, 3}, rng).transpose(1, 2);
  REQUIRE_FALSE(xt.is_contiguous());
  CHECK(dpm::conv1d(Variable(xt), w1, {}, 1, 1).data().to_vector() ==
        dpm::conv1d(Variable(xt.contiguous()), w1, {}, 1, 1).data().to_vector());

  // A gradient bound to a strided view (set_grad) accumulates like a dense one.
  Variable dense(x1.data(), true), strided(x1.data(), true);
  strided.set_grad(Tensor::zeros({2, 13, 3}).transpose(1, 2));
  Tensor seed = dpm::randn({2, 4, 11}, rng);
  dpm::conv1d(dense, w1).backward(seed);
  dpm::conv1d(strided, w1).backward(seed);
  CHECK(strided.grad().to_vector() == dense.grad().to_vector());
}

TEST_CASE("conv adjoint identity <T x, y> = <x, T^T y>", "[conv]") {
  Rng rng(13);
  auto dot = [](const Tensor& a, const Tensor& b) {
    std::vector<float> va = a.to_vector(), vb = b.to_vector();
    double sum = 0.0, aa = 0.0, bb = 0.0;
    for (size_t i = 0; i < va.size(); ++i) {
      sum += static_cast<double>(va[i]) * vb[i];
      aa += static_cast<double>(va[i]) * va[i];
      bb += static_cast<double>(vb[i]) * vb[i];
    }
    return std::pair{sum, std::sqrt(aa * bb)};  // the value and its Cauchy-Schwarz scale
  };
  for (PaddingMode mode : {kZeros, kReplicate}) {
    for (int stride : {1, 2}) {
      INFO("mode " << (mode == kZeros ? "zeros" : "replicate") << ", stride " << stride);
      {
        Tensor x = dpm::randn({3, 4, 13}, rng), w = dpm::randn({5, 4, 3}, rng);
        Tensor tx = dpm::conv1d(Variable(x), Variable(w), {}, stride, 1, mode).data();
        Tensor y = dpm::randn(tx.shape(), rng);
        auto [lhs, scale] = dot(tx, y);
        auto [rhs, unused] = dot(x, dpm::conv1d_adjoint(y, w, 13, stride, 1, mode));
        CHECK(std::abs(lhs - rhs) <= 1e-5 * scale);
      }
      {
        Tensor x = dpm::randn({2, 3, 7, 9}, rng), w = dpm::randn({4, 3, 3, 3}, rng);
        Tensor tx = dpm::conv2d(Variable(x), Variable(w), {}, stride, 2, mode).data();
        Tensor y = dpm::randn(tx.shape(), rng);
        auto [lhs, scale] = dot(tx, y);
        auto [rhs, unused] = dot(x, dpm::conv2d_adjoint(y, w, 7, 9, stride, 2, mode));
        CHECK(std::abs(lhs - rhs) <= 1e-5 * scale);
      }
    }
  }
}

TEST_CASE("conv1d and conv2d pass gradcheck", "[conv][gradcheck]") {
  Rng rng(14);
  for (PaddingMode mode : {kZeros, kReplicate}) {
    for (int stride : {1, 2}) {
      INFO("mode " << (mode == kZeros ? "zeros" : "replicate") << ", stride " << stride);
      std::vector<Variable> in1{Variable(dpm::randn({2, 3, 9}, rng), true),
                                Variable(dpm::randn({4, 3, 3}, rng), true),
                                Variable(dpm::randn({4}, rng), true)};
      auto r1 = dpm::gradcheck(
          [&](const std::vector<Variable>& v) {
            return dpm::conv1d(v[0], v[1], v[2], stride, 1, mode);
          },
          in1);
      INFO(r1.report);
      CHECK(r1.passed);

      std::vector<Variable> in2{Variable(dpm::randn({2, 2, 6, 5}, rng), true),
                                Variable(dpm::randn({3, 2, 3, 3}, rng), true),
                                Variable(dpm::randn({3}, rng), true)};
      auto r2 = dpm::gradcheck(
          [&](const std::vector<Variable>& v) {
            return dpm::conv2d(v[0], v[1], v[2], stride, 1, mode);
          },
          in2);
      INFO(r2.report);
      CHECK(r2.passed);
    }
  }
}

TEST_CASE("conv ops reject bad shapes with clear messages", "[conv]") {
  using Catch::Contains;
  auto var = [](const Shape& s) { return Variable(Tensor::zeros(s)); };
  CHECK_THROWS_WITH(dpm::conv2d(var({1, 4, 5, 5}), var({2, 3, 3, 3})),
                    Contains("conv2d") && Contains("weight has 3 input channels, input has 4"));
  CHECK_THROWS_WITH(dpm::conv1d(var({1, 4, 5}), var({2, 3, 3})),
                    Contains("conv1d") && Contains("[1, 4, 5]") && Contains("[2, 3, 3]"));
  CHECK_THROWS_WITH(dpm::conv1d(var({1, 1, 3}), var({1, 1, 7}), {}, 1, 1),
                    Contains("conv1d") && Contains("kernel 7 is larger than the padded input 5"));
  CHECK_THROWS_WITH(
      dpm::conv2d(var({1, 1, 9, 2}), var({1, 1, 3, 3})),
      Contains("conv2d") && Contains("kernel 3x3 is larger than the padded input 9x2"));
  CHECK_THROWS_WITH(
      dpm::conv1d(var({1, 1, 2}), var({1, 1, 3}), {}, 1, 3, kReplicate),
      Contains("conv1d") && Contains("replicate padding 3 is wider than the input 2"));
  CHECK_THROWS_WITH(dpm::conv2d(var({1, 1, 5}), var({1, 1, 3, 3})),
                    Contains("conv2d: input must be [B, Ci, H, W]") && Contains("[1, 1, 5]"));
  CHECK_THROWS_WITH(dpm::conv1d(var({1, 1, 5}), var({1, 1, 3, 3})),
                    Contains("conv1d: weight must be [Co, Ci, K]") && Contains("[1, 1, 3, 3]"));
  CHECK_THROWS_WITH(dpm::conv1d(var({1, 2, 5}), var({3, 2, 3}), var({2})),
                    Contains("conv1d: bias has shape [2], expected [3]"));
  CHECK_THROWS_WITH(dpm::conv1d(var({1, 2, 5}), var({3, 2, 3}), {}, 0),
                    Contains("conv1d: stride must be at least 1"));
  CHECK_THROWS_WITH(dpm::conv2d(var({1, 2, 5, 5}), var({3, 2, 3, 3}), {}, 1, -1),
                    Contains("conv2d: padding must be non-negative"));
  CHECK_THROWS_WITH(dpm::conv1d_adjoint(Tensor::zeros({1, 3, 4}), Tensor::zeros({3, 2, 3}), 5),
                    Contains("conv1d_adjoint: y has shape [1, 3, 4]") && Contains("[1, 3, 3]"));
  CHECK_THROWS_WITH(
      dpm::conv2d_adjoint(Tensor::zeros({1, 2, 3, 3}), Tensor::zeros({3, 2, 3, 3}), 5, 5),
      Contains("conv2d_adjoint: y has 2 channels, weight has 3 output channels"));
  CHECK_THROWS_WITH(dpm::conv1d_adjoint(Tensor::zeros({1, 3, 4}), Tensor::zeros({3, 2, 3}), -1),
                    Contains("conv1d_adjoint: input size must be positive"));
}

TEST_CASE("conv gradients are bitwise deterministic", "[conv]") {
  Rng rng(15);
  // Zero padding takes the adjoint-convolution path for the input gradient, replicate padding
  // the patch-matrix one.
  auto weight_grad = [](const Tensor& x, const Tensor& w, const Tensor& seed, int threads,
                        PaddingMode mode) {
    dpm::set_num_threads(threads);
    Variable xv(x, true), wv(w, true), bv(Tensor::zeros({w.size(0)}), true);
    dpm::conv2d(xv, wv, bv, 1, 1, mode).backward(seed);
    std::vector<float> grads = wv.grad().to_vector();
    for (float v : xv.grad().to_vector()) grads.push_back(v);
    for (float v : bv.grad().to_vector()) grads.push_back(v);
    return grads;
  };
  struct Size {
    int64_t batch, ci, co, hw;
  };
  for (Size s : {Size{8, 4, 6, 10}, Size{8, 16, 16, 28}, Size{1, 16, 16, 28}})
    for (PaddingMode mode : {kReplicate, kZeros}) {
      INFO("batch " << s.batch << ", " << s.ci << " -> " << s.co << " channels, " << s.hw << "x"
                    << s.hw << (mode == kZeros ? ", zeros" : ", replicate"));
      Tensor x = dpm::randn({s.batch, s.ci, s.hw, s.hw}, rng);
      Tensor w = dpm::randn({s.co, s.ci, 3, 3}, rng);
      Tensor seed = dpm::randn({s.batch, s.co, s.hw, s.hw}, rng);
      const auto first = weight_grad(x, w, seed, 2, mode);
      const auto second = weight_grad(x, w, seed, 2, mode);
      const auto single = weight_grad(x, w, seed, 1, mode);
      REQUIRE(first.size() == second.size());
      CHECK(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)) == 0);
      // A batch of several blocks runs single-threaded GEMMs whatever the thread count; a single
      // block lets OpenBLAS thread its GEMMs, which is reproducible only for a fixed count.
      if (s.batch > 1)
        CHECK(std::memcmp(first.data(), single.data(), first.size() * sizeof(float)) == 0);
    }
  dpm::set_num_threads(0);
}
