// Arithmetic, reductions, shape ops, matrix products, activations and the MSE loss: forward values
// against naive double references, gradients against finite differences, and error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"

using dpm::Shape;
using dpm::Tensor;
using dpm::Variable;

namespace {

Variable uniform_leaf(const Shape& shape, dpm::Rng& rng, float low = -1.0f, float high = 1.0f) {
  return Variable(dpm::rand_uniform(shape, rng, low, high), true);
}

void check_gradients(const dpm::GradcheckFn& f, const std::vector<Variable>& inputs) {
  dpm::GradcheckResult result = dpm::gradcheck(f, inputs);
  INFO(result.report);
  CHECK(result.passed);
}

std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> index(static_cast<size_t>(shape.ndim()));
  for (int d = shape.ndim() - 1; d >= 0; --d) {
    index[static_cast<size_t>(d)] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

// Row-major position in `shape` of the element that broadcasts to `index` of a larger shape.
int64_t broadcast_source(const std::vector<int64_t>& index, const Shape& shape) {
  int lead = static_cast<int>(index.size()) - shape.ndim();
  int64_t flat = 0;
  for (int d = 0; d < shape.ndim(); ++d)
    flat = flat * shape[d] + (shape[d] == 1 ? 0 : index[static_cast<size_t>(lead + d)]);
  return flat;
}

// Compares every element with a double reference within a relative tolerance (one assertion,
// naming the first element that is off and how many are).
void check_close(const Tensor& actual, const std::vector<double>& expected, double tolerance) {
  REQUIRE(static_cast<size_t>(actual.numel()) == expected.size());
  std::vector<float> v = actual.to_vector();
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == Approx(expected[i]).epsilon(tolerance).margin(tolerance)) continue;
    if (bad++ == 0) first_bad = i;
  }
  INFO(bad << " elements off; first: element " << first_bad << " = " << (bad ? v[first_bad] : 0.0f)
           << ", expected " << (bad ? expected[first_bad] : 0.0));
  CHECK(bad == 0);
}

// ---- arithmetic -------------------------------------------------------------------------------

using BinaryFn = std::function<Variable(const Variable&, const Variable&)>;
using BinaryRef = std::function<double(double, double)>;

struct BinaryCase {
  const char* name;
  BinaryFn op;
  BinaryRef reference;
};

const std::vector<BinaryCase>& binary_cases() {
  static const std::vector<BinaryCase> cases{
      {"add", dpm::add, [](double x, double y) { return x + y; }},
      {"sub", dpm::sub, [](double x, double y) { return x - y; }},
      {"mul", dpm::mul, [](double x, double y) { return x * y; }},
      {"div", dpm::div, [](double x, double y) { return x / y; }},
  };
  return cases;
}

// Naive broadcasting in double, one output element at a time.
std::vector<double> binary_reference(const Tensor& a, const Tensor& b, const BinaryRef& f) {
  Shape full = dpm::broadcast_shapes(a.shape(), b.shape());
  std::vector<float> va = a.to_vector(), vb = b.to_vector();
  std::vector<double> out(static_cast<size_t>(full.numel()));
  for (int64_t i = 0; i < full.numel(); ++i) {
    std::vector<int64_t> index = unravel(i, full);
    out[static_cast<size_t>(i)] = f(va[static_cast<size_t>(broadcast_source(index, a.shape()))],
                                    vb[static_cast<size_t>(broadcast_source(index, b.shape()))]);
  }
  return out;
}

const std::vector<std::pair<Shape, Shape>> kBroadcastPairs{
    {Shape{2, 3}, Shape{2, 3}},
    {Shape{2, 3, 4}, Shape{3, 1}},
    {Shape{4}, Shape{2, 3, 4}},
    {Shape{}, Shape{2, 3}},
    {Shape{2, 3}, Shape{}},
    {Shape{2, 3, 5}, Shape{1, 3, 1}},
    {Shape{3, 1}, Shape{2, 3, 5}},
    {Shape{2, 1, 4}, Shape{3, 1}},
    {Shape{2, 1, 3, 1, 2}, Shape{4, 3, 1, 1}},
    {Shape{}, Shape{}}};

}  // namespace

TEST_CASE("binary ops broadcast like NumPy (values)", "[arith]") {
  dpm::Rng rng(1);
  // Larger shapes too, so the per-channel and dense paths run split over threads.
  std::vector<std::pair<Shape, Shape>> pairs = kBroadcastPairs;
  pairs.push_back({Shape{4, 64, 300}, Shape{4, 64, 1}});
  pairs.push_back({Shape{4, 64, 300}, Shape{64, 1}});
  pairs.push_back({Shape{4, 64, 300}, Shape{4, 64, 300}});
  pairs.push_back({Shape{70000}, Shape{1}});
  for (const auto& [sa, sb] : pairs) {
    Tensor a = dpm::rand_uniform(sa, rng, -2.0f, 2.0f);
    Tensor b = dpm::rand_uniform(sb, rng, 0.5f, 2.0f);
    for (const BinaryCase& c : binary_cases()) {
      INFO(c.name << " " << sa.str() << " " << sb.str());
      Variable out = c.op(Variable(a), Variable(b));
      CHECK(out.shape() == dpm::broadcast_shapes(sa, sb));
      check_close(out.data(), binary_reference(a, b, c.reference), 1e-6);
    }
  }
}

TEST_CASE("binary ops accept strided inputs", "[arith]") {
  dpm::Rng rng(2);
  Tensor a = dpm::randn(Shape{4, 3}, rng).transpose(0, 1);  // [3, 4], not contiguous
  Tensor b = dpm::randn(Shape{4}, rng);
  Variable out = dpm::mul(Variable(a), Variable(b));
  check_close(out.data(), binary_reference(a, b, [](double x, double y) { return x * y; }), 1e-6);
}

TEST_CASE("binary ops: gradients, including broadcast operands", "[arith][gradcheck]") {
  dpm::Rng rng(3);
  for (const auto& [sa, sb] : kBroadcastPairs) {
    for (const BinaryCase& c : binary_cases()) {
      INFO(c.name << " " << sa.str() << " " << sb.str());
      Variable a = uniform_leaf(sa, rng, -2.0f, 2.0f);
      Variable b = uniform_leaf(sb, rng, 0.5f, 2.0f);  // away from 0 for div
      check_gradients([&](const std::vector<Variable>& v) { return c.op(v[0], v[1]); }, {a, b});
    }
  }
}

TEST_CASE("binary ops: only operands that require grad get one", "[arith]") {
  Variable a(Tensor::from_vector(Shape{2, 2}, {1, 2, 3, 4}), true);
  Variable b(Tensor::from_vector(Shape{2}, {10, 20}), false);
  dpm::sum(a * b).backward();
  CHECK(a.grad().to_vector() == std::vector<float>{10, 20, 10, 20});
  CHECK_FALSE(b.has_grad());
}

TEST_CASE("binary ops: incompatible shapes are rejected with the op's name", "[arith]") {
  Variable a(Tensor::zeros(Shape{2, 3})), b(Tensor::zeros(Shape{4}));
  CHECK_THROWS_WITH(dpm::add(a, b),
                    Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  CHECK_THROWS_WITH(dpm::div(a, b), Catch::Contains("div"));
  CHECK_THROWS_WITH(dpm::mul(a, Variable()),
                    Catch::Contains("mul") && Catch::Contains("undefined"));
}

TEST_CASE("sum_to_shape reduces broadcast dimensions exactly", "[arith]") {
  dpm::Rng rng(4);
  Tensor g = dpm::randn(Shape{2, 3, 4}, rng);
  std::vector<float> v = g.to_vector();
  for (Shape target :
       {Shape{3, 1}, Shape{1, 4}, Shape{4}, Shape{}, Shape{2, 1, 1}, Shape{2, 3, 4}}) {
    INFO(target.str());
    Tensor r = dpm::sum_to_shape(g, target);
    REQUIRE(r.shape() == target);
    std::vector<double> expected(static_cast<size_t>(target.numel()), 0.0);
    for (int64_t i = 0; i < g.numel(); ++i)  // same order as the kernel: row-major, in double
      expected[static_cast<size_t>(broadcast_source(unravel(i, g.shape()), target))] +=
          v[static_cast<size_t>(i)];
    CHECK(r.to_vector() == std::vector<float>(expected.begin(), expected.end()));
  }
  CHECK_THROWS_WITH(dpm::sum_to_shape(g, Shape{5}),
                    Catch::Contains("sum_to_shape") && Catch::Contains("[5]"));
}

TEST_CASE("unary ops: values against std:: in double", "[arith]") {
  dpm::Rng rng(5);
  struct UnaryCase {
    const char* name;
    std::function<Variable(const Variable&)> op;
    std::function<double(double)> reference;
  };
  std::vector<UnaryCase> cases{
      {"add_scalar", [](const Variable& x) { return x + 1.5f; }, [](double x) { return x + 1.5; }},
      {"sub scalar", [](const Variable& x) { return x - 1.5f; }, [](double x) { return x - 1.5; }},
      {"scalar sub", [](const Variable& x) { return 1.5f - x; }, [](double x) { return 1.5 - x; }},
      {"mul_scalar", [](const Variable& x) { return x * -3.0f; }, [](double x) { return -3 * x; }},
      {"div scalar", [](const Variable& x) { return x / 4.0f; }, [](double x) { return x / 4; }},
      {"scalar div", [](const Variable& x) { return 2.0f / x; }, [](double x) { return 2 / x; }},
      {"neg", [](const Variable& x) { return -x; }, [](double x) { return -x; }},
      {"exp", dpm::exp, [](double x) { return std::exp(x); }},
      {"log", dpm::log, [](double x) { return std::log(x); }},
      {"sqrt", dpm::sqrt, [](double x) { return std::sqrt(x); }},
      {"square", dpm::square, [](double x) { return x * x; }},
      {"pow 2.5", [](const Variable& x) { return dpm::pow(x, 2.5f); },
       [](double x) { return std::pow(x, 2.5); }},
      {"pow -1", [](const Variable& x) { return dpm::pow(x, -1.0f); },
       [](double x) { return 1 / x; }},
  };
  for (Shape shape : {Shape{}, Shape{7}, Shape{3, 50000}}) {
    Tensor x = dpm::rand_uniform(shape, rng, 0.2f, 3.0f);
    std::vector<float> vx = x.to_vector();
    for (const UnaryCase& c : cases) {
      INFO(c.name << " " << shape.str());
      std::vector<double> expected;
      for (float e : vx) expected.push_back(c.reference(e));
      check_close(c.op(Variable(x)).data(), expected, 1e-6);
    }
  }
}

TEST_CASE("unary ops: gradients", "[arith][gradcheck]") {
  dpm::Rng rng(6);
  using UnaryFn = std::function<Variable(const Variable&)>;
  std::vector<std::pair<const char*, UnaryFn>> cases{
      {"add_scalar", [](const Variable& x) { return dpm::add_scalar(x, 0.5f); }},
      {"mul_scalar", [](const Variable& x) { return dpm::mul_scalar(x, -2.0f); }},
      {"neg", dpm::neg},
      {"exp", dpm::exp},
      {"log", dpm::log},
      {"sqrt", dpm::sqrt},
      {"square", dpm::square},
      {"pow 3", [](const Variable& x) { return dpm::pow(x, 3.0f); }},
      {"pow -0.5", [](const Variable& x) { return dpm::pow(x, -0.5f); }},
      {"pow 0", [](const Variable& x) { return dpm::pow(x, 0.0f); }},
  };
  for (const auto& [name, f] : cases) {
    INFO(name);
    Variable x = uniform_leaf(Shape{2, 3}, rng, 0.5f, 2.0f);  // positive for log, sqrt, pow
    check_gradients([&](const std::vector<Variable>& v) { return f(v[0]); }, {x});
  }
}

// ---- reductions -------------------------------------------------------------------------------

TEST_CASE("sum and mean: values equal a double reference bitwise", "[reduce]") {
  dpm::Rng rng(7);
  struct Case {
    Shape shape;
    std::vector<int> dims;
  };
  std::vector<Case> cases{
      {Shape{2, 3, 4}, {0}},        {Shape{2, 3, 4}, {1}},    {Shape{2, 3, 4}, {-1}},
      {Shape{2, 3, 4}, {0, 2}},     {Shape{2, 3, 4}, {2, 1}}, {Shape{2, 3, 4}, {0, 1, 2}},
      {Shape{2, 3, 4}, {}},         {Shape{5}, {0}},          {Shape{3, 1, 4, 2, 2}, {1, 3}},
      {Shape{64, 40, 300}, {0, 2}}, {Shape{300, 1000}, {0}},  {Shape{300, 1000}, {1}}};
  for (const Case& c : cases) {
    Tensor x = dpm::randn(c.shape, rng);
    std::vector<float> vx = x.to_vector();
    std::vector<int64_t> kept = c.shape.vec(), squeezed;
    int64_t count = 1;
    for (int d = 0; d < c.shape.ndim(); ++d) {
      bool reduced = false;
      for (int r : c.dims) reduced = reduced || (r < 0 ? r + c.shape.ndim() : r) == d;
      if (reduced) {
        kept[static_cast<size_t>(d)] = 1;
        count *= c.shape[d];
      } else {
        squeezed.push_back(c.shape[d]);
      }
    }
    Shape kept_shape(kept);
    std::vector<double> sums(static_cast<size_t>(kept_shape.numel()), 0.0);
    for (int64_t i = 0; i < x.numel(); ++i)
      sums[static_cast<size_t>(broadcast_source(unravel(i, c.shape), kept_shape))] +=
          vx[static_cast<size_t>(i)];
    for (bool keepdim : {false, true}) {
      INFO(c.shape.str() << " dims " << c.dims.size() << " keepdim " << keepdim);
      Variable s = dpm::sum(Variable(x), c.dims, keepdim);
      Variable m = dpm::mean(Variable(x), c.dims, keepdim);
      CHECK(s.shape() == (keepdim ? kept_shape : Shape(squeezed)));
      CHECK(m.shape() == s.shape());
      std::vector<float> expected_sum, expected_mean;
      for (double e : sums) {
        expected_sum.push_back(static_cast<float>(e));
        expected_mean.push_back(static_cast<float>(e * (1.0 / static_cast<double>(count))));
      }
      CHECK(s.data().to_vector() == expected_sum);
      CHECK(m.data().to_vector() == expected_mean);
    }
  }
  Tensor x = dpm::randn(Shape{3, 4}, rng);
  double total = 0;
  for (float e : x.to_vector()) total += e;
  CHECK(dpm::sum(Variable(x)).shape() == Shape{});
  CHECK(dpm::sum(Variable(x)).item() == static_cast<float>(total));
  CHECK(dpm::mean(Variable(x)).item() == static_cast<float>(total / 12.0));
}

TEST_CASE("sum accumulates in double", "[reduce]") {
  // 2^24 + 1 in float32 arithmetic would stall at 2^24; in double the ones all count.
  Tensor x = Tensor::ones(Shape{(1 << 24) + 4});
  CHECK(dpm::sum(Variable(x)).item() == static_cast<float>((1 << 24) + 4));
  CHECK(dpm::mean(Variable(x)).item() == 1.0f);
}

TEST_CASE("sum and mean: gradients", "[reduce][gradcheck]") {
  dpm::Rng rng(8);
  std::vector<std::vector<int>> dim_sets{{0}, {1}, {-1}, {0, 2}, {0, 1, 2}, {}};
  for (const auto& dims : dim_sets) {
    for (bool keepdim : {false, true}) {
      INFO("dims " << dims.size() << " keepdim " << keepdim);
      Variable x = uniform_leaf(Shape{2, 3, 4}, rng);
      check_gradients([&](const std::vector<Variable>& v) { return dpm::sum(v[0], dims, keepdim); },
                      {x});
      check_gradients(
          [&](const std::vector<Variable>& v) { return dpm::mean(v[0], dims, keepdim); }, {x});
    }
  }
  Variable x = uniform_leaf(Shape{3, 2}, rng);
  check_gradients([](const std::vector<Variable>& v) { return dpm::sum(v[0]); }, {x});
  check_gradients([](const std::vector<Variable>& v) { return dpm::mean(v[0]); }, {x});
}

TEST_CASE("sum and mean: bad dimensions are rejected", "[reduce]") {
  Variable x(Tensor::zeros(Shape{2, 3}));
  CHECK_THROWS_WITH(dpm::sum(x, {2}), Catch::Contains("sum") && Catch::Contains("dimension 2") &&
                                          Catch::Contains("[2, 3]"));
  CHECK_THROWS_WITH(dpm::mean(x, {1, -1}), Catch::Contains("mean") && Catch::Contains("twice"));
}

// ---- shape ops --------------------------------------------------------------------------------

TEST_CASE("reshape and flatten share contiguous storage", "[shape]") {
  Tensor t = Tensor::from_vector(Shape{2, 3, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  Variable x(t, true);
  Variable r = dpm::reshape(x, Shape{3, 4});
  CHECK(r.shape() == Shape{3, 4});
  CHECK(r.data().shares_storage_with(t));
  CHECK(r.data().to_vector() == t.to_vector());
  CHECK(dpm::flatten(x).shape() == Shape{2, 6});
  CHECK(dpm::flatten(x, 0).shape() == Shape{12});
  CHECK(dpm::flatten(x, -1).shape() == Shape{2, 3, 2});
  CHECK(dpm::flatten(x, 1).data().shares_storage_with(t));
  // A strided input is copied first.
  Variable tr(t.transpose(0, 2));
  CHECK(dpm::reshape(tr, Shape{12}).data().to_vector() ==
        t.transpose(0, 2).contiguous().to_vector());
  CHECK_THROWS_WITH(dpm::reshape(x, Shape{5, 2}), Catch::Contains("reshape") &&
                                                      Catch::Contains("[2, 3, 2]") &&
                                                      Catch::Contains("[5, 2]"));
  CHECK_THROWS_WITH(dpm::flatten(x, 3), Catch::Contains("flatten"));
}

TEST_CASE("permute and transpose give contiguous copies in the right order", "[shape]") {
  dpm::Rng rng(9);
  Tensor t = dpm::randn(Shape{2, 3, 4}, rng);
  Variable p = dpm::permute(Variable(t), {2, 0, 1});
  REQUIRE(p.shape() == Shape{4, 2, 3});
  CHECK(p.data().is_contiguous());
  CHECK_FALSE(p.data().shares_storage_with(t));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) CHECK(p.data().at({k, i, j}) == t.at({i, j, k}));
  Variable tr = dpm::transpose(Variable(t), 0, -1);
  REQUIRE(tr.shape() == Shape{4, 3, 2});
  CHECK(tr.data().is_contiguous());
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) CHECK(tr.data().at({k, j, i}) == t.at({i, j, k}));
  CHECK_FALSE(dpm::permute(Variable(t), {0, 1, 2}).data().shares_storage_with(t));
  CHECK_THROWS_WITH(dpm::permute(Variable(t), {0, 0, 1}),
                    Catch::Contains("permute") && Catch::Contains("repeated"));
  CHECK_THROWS_WITH(dpm::permute(Variable(t), {0, 1}), Catch::Contains("permute"));
  CHECK_THROWS_WITH(dpm::transpose(Variable(t), 0, 3),
                    Catch::Contains("transpose") && Catch::Contains("dimension 3"));
}

TEST_CASE("concat, split, chunk and slice: values", "[shape]") {
  dpm::Rng rng(10);
  for (int dim : {0, 1, -1}) {
    INFO("dim " << dim);
    Tensor a = dpm::randn(Shape{2, 3, 4}, rng);
    Shape sb = a.shape(), sc = a.shape();
    int d = dim < 0 ? dim + 3 : dim;
    sb[d] = 1;
    sc[d] = 2;
    Tensor b = dpm::randn(sb, rng), c = dpm::randn(sc, rng);
    Variable cat = dpm::concat({Variable(a), Variable(b), Variable(c)}, dim);
    Shape expected_shape = a.shape();
    expected_shape[d] += 3;
    REQUIRE(cat.shape() == expected_shape);
    // Naive reference: element by element, choosing the part by the index along d.
    std::vector<float> got = cat.data().to_vector();
    const Tensor* part_of[] = {&a, &b, &c};
    const int64_t part_start[] = {0, a.size(d), a.size(d) + 1};
    for (int64_t i = 0; i < cat.numel(); ++i) {
      std::vector<int64_t> idx = unravel(i, expected_shape);
      int k = idx[static_cast<size_t>(d)] < part_start[1]   ? 0
              : idx[static_cast<size_t>(d)] < part_start[2] ? 1
                                                            : 2;
      idx[static_cast<size_t>(d)] -= part_start[k];
      CHECK(got[static_cast<size_t>(i)] == part_of[k]->at({idx[0], idx[1], idx[2]}));
    }
    std::vector<Variable> parts = dpm::split(cat, {a.size(d), 1, 2}, dim);
    REQUIRE(parts.size() == 3);
    CHECK(parts[0].data().to_vector() == a.to_vector());
    CHECK(parts[1].data().to_vector() == b.to_vector());
    CHECK(parts[2].data().to_vector() == c.to_vector());
    Variable s = dpm::slice(cat, dim, a.size(d), a.size(d) + 1);
    CHECK(s.shape() == sb);
    CHECK(s.data().to_vector() == b.to_vector());
  }
  Tensor t = dpm::randn(Shape{2, 6}, rng);
  std::vector<Variable> chunks = dpm::chunk(Variable(t), 3, 1);
  REQUIRE(chunks.size() == 3);
  for (int64_t k = 0; k < 3; ++k)
    CHECK(chunks[static_cast<size_t>(k)].data().to_vector() ==
          t.narrow(1, 2 * k, 2).contiguous().to_vector());
  CHECK(dpm::slice(Variable(t), 0, 1, 1).shape() == Shape{0, 6});
  // Bigger tensors, so the copies run split over threads.
  Tensor big = dpm::randn(Shape{8, 96, 500}, rng), skip = dpm::randn(Shape{8, 32, 500}, rng);
  Variable joined = dpm::concat({Variable(big), Variable(skip)}, 1);
  CHECK(dpm::slice(joined, 1, 0, 96).data().to_vector() == big.to_vector());
  CHECK(dpm::slice(joined, 1, 96, 128).data().to_vector() == skip.to_vector());
}

TEST_CASE("shape ops: gradients", "[shape][gradcheck]") {
  dpm::Rng rng(11);
  Variable x = uniform_leaf(Shape{2, 3, 4}, rng);
  Variable y = uniform_leaf(Shape{2, 2, 4}, rng);
  using Fn = std::function<Variable(const std::vector<Variable>&)>;
  std::vector<std::pair<const char*, Fn>> cases{
      {"reshape",
       [](const std::vector<Variable>& v) {
         return dpm::reshape(v[0], Shape{4, 6});
       }},
      {"flatten", [](const std::vector<Variable>& v) { return dpm::flatten(v[0]); }},
      {"permute",
       [](const std::vector<Variable>& v) {
         return dpm::permute(v[0], {1, 2, 0});
       }},
      {"transpose", [](const std::vector<Variable>& v) { return dpm::transpose(v[0], 2, 0); }},
      {"concat",
       [](const std::vector<Variable>& v) {
         return dpm::concat({v[0], v[1], v[0]}, 1);
       }},
      {"slice", [](const std::vector<Variable>& v) { return dpm::slice(v[0], -1, 1, 3); }},
      {"split",
       [](const std::vector<Variable>& v) {
         std::vector<Variable> p = dpm::split(v[0], {1, 2}, 1);
         return dpm::concat({dpm::mul_scalar(p[1], 3.0f), p[0]}, 1);
       }},
      {"chunk",
       [](const std::vector<Variable>& v) {
         std::vector<Variable> p = dpm::chunk(v[0], 2, 2);
         return p[0] * p[1];
       }},
  };
  for (const auto& [name, f] : cases) {
    INFO(name);
    check_gradients(f, {x, y});
  }
}

TEST_CASE("concat, split, chunk, slice: bad arguments are rejected", "[shape]") {
  Variable a(Tensor::zeros(Shape{2, 3})), b(Tensor::zeros(Shape{3, 3}));
  CHECK_THROWS_WITH(dpm::concat({a, b}, 1), Catch::Contains("concat") &&
                                                Catch::Contains("part 1") &&
                                                Catch::Contains("[3, 3]"));
  CHECK_THROWS_WITH(dpm::concat({}, 0), Catch::Contains("concat"));
  CHECK_THROWS_WITH(dpm::split(a, {1, 1}, 1),
                    Catch::Contains("split") && Catch::Contains("sum to 2"));
  CHECK_THROWS_WITH(dpm::chunk(a, 2, 1), Catch::Contains("chunk") && Catch::Contains("2 chunks"));
  CHECK_THROWS_WITH(dpm::slice(a, 1, 2, 4), Catch::Contains("slice") && Catch::Contains("[2, 4)"));
  CHECK_THROWS_WITH(dpm::slice(a, 2, 0, 1), Catch::Contains("slice"));
}

// ---- matrix products --------------------------------------------------------------------------

namespace {

// C = A B in double for A [M, K], B [K, N] (row-major, with per-element strides for B^T).
std::vector<double> naive_matmul(const std::vector<float>& a, const std::vector<float>& b,
                                 int64_t M, int64_t K, int64_t N, bool b_transposed,
                                 std::vector<double>* abs_sums) {
  std::vector<double> c(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0, s_abs = 0;
      for (int64_t k = 0; k < K; ++k) {
        double p = static_cast<double>(a[static_cast<size_t>(i * K + k)]) *
                   b[static_cast<size_t>(b_transposed ? j * K + k : k * N + j)];
        s += p;
        s_abs += std::fabs(p);
      }
      c[static_cast<size_t>(i * N + j)] = s;
      if (abs_sums) abs_sums->push_back(s_abs);
    }
  return c;
}

// A float32 GEMM's rounding error is bounded by about K * 2^-24 * sum_k |a_ik b_kj|.
void check_gemm_result(const Tensor& actual, const std::vector<double>& expected,
                       const std::vector<double>& abs_sums, int64_t K) {
  std::vector<float> v = actual.to_vector();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i);
    CHECK(std::fabs(v[i] - expected[i]) <= (static_cast<double>(K) + 2) * 0x1p-24 * abs_sums[i]);
  }
}

}  // namespace

TEST_CASE("matmul, bmm and linear: values against naive double loops", "[linalg]") {
  dpm::Rng rng(12);
  for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{3, 4, 5}, {1, 7, 1}, {37, 70, 50}}) {
    INFO("M " << M << " K " << K << " N " << N);
    Tensor a = dpm::randn(Shape{M, K}, rng), b = dpm::randn(Shape{K, N}, rng);
    std::vector<double> sums;
    auto expected = naive_matmul(a.to_vector(), b.to_vector(), M, K, N, false, &sums);
    check_gemm_result(dpm::matmul(Variable(a), Variable(b)).data(), expected, sums, K);

    Tensor w = dpm::randn(Shape{N, K}, rng), bias = dpm::randn(Shape{N}, rng);
    sums.clear();
    expected = naive_matmul(a.to_vector(), w.to_vector(), M, K, N, true, &sums);
    check_gemm_result(dpm::linear(Variable(a), Variable(w)).data(), expected, sums, K);
    std::vector<float> vb = bias.to_vector();
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        expected[static_cast<size_t>(i * N + j)] += vb[static_cast<size_t>(j)];
        sums[static_cast<size_t>(i * N + j)] += std::fabs(vb[static_cast<size_t>(j)]);
      }
    check_gemm_result(dpm::linear(Variable(a), Variable(w), Variable(bias)).data(), expected, sums,
                      K + 1);
  }
  // bmm: each batch entry is its own product.
  Tensor a = dpm::randn(Shape{3, 4, 6}, rng), b = dpm::randn(Shape{3, 6, 5}, rng);
  Variable c = dpm::bmm(Variable(a), Variable(b));
  REQUIRE(c.shape() == Shape{3, 4, 5});
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<double> sums;
    auto expected = naive_matmul(a.narrow(0, i, 1).to_vector(), b.narrow(0, i, 1).to_vector(), 4, 6,
                                 5, false, &sums);
    check_gemm_result(c.data().narrow(0, i, 1), expected, sums, 6);
  }
  // linear on a 3-D input folds the leading dims; on a 1-D input it is a matrix-vector product.
  Tensor x3 = dpm::randn(Shape{2, 3, 4}, rng), w = dpm::randn(Shape{5, 4}, rng);
  Variable y3 = dpm::linear(Variable(x3), Variable(w));
  REQUIRE(y3.shape() == Shape{2, 3, 5});
  Variable y2 = dpm::linear(Variable(x3.view(Shape{6, 4})), Variable(w));
  CHECK(y3.data().to_vector() == y2.data().to_vector());
  Variable y1 = dpm::linear(Variable(x3.view(Shape{24}).narrow(0, 4, 4)), Variable(w));
  REQUIRE(y1.shape() == Shape{5});
  std::vector<double> sums;
  check_gemm_result(y1.data(),
                    naive_matmul(x3.view(Shape{24}).narrow(0, 4, 4).to_vector(), w.to_vector(), 1,
                                 4, 5, true, &sums),
                    sums, 4);
}

TEST_CASE("matmul, bmm and linear: gradients", "[linalg][gradcheck]") {
  dpm::Rng rng(13);
  Variable a = uniform_leaf(Shape{3, 4}, rng), b = uniform_leaf(Shape{4, 2}, rng);
  check_gradients([](const std::vector<Variable>& v) { return dpm::matmul(v[0], v[1]); }, {a, b});
  Variable ba = uniform_leaf(Shape{2, 3, 4}, rng), bb = uniform_leaf(Shape{2, 4, 3}, rng);
  check_gradients([](const std::vector<Variable>& v) { return dpm::bmm(v[0], v[1]); }, {ba, bb});
  Variable x = uniform_leaf(Shape{3, 4}, rng), w = uniform_leaf(Shape{5, 4}, rng);
  Variable bias = uniform_leaf(Shape{5}, rng);
  check_gradients([](const std::vector<Variable>& v) { return dpm::linear(v[0], v[1], v[2]); },
                  {x, w, bias});
  check_gradients([](const std::vector<Variable>& v) { return dpm::linear(v[0], v[1]); }, {x, w});
  Variable x3 = uniform_leaf(Shape{2, 3, 4}, rng);
  check_gradients([](const std::vector<Variable>& v) { return dpm::linear(v[0], v[1], v[2]); },
                  {x3, w, bias});
}

TEST_CASE("linear: the bias gradient is the column sum of the output gradient", "[linalg]") {
  dpm::Rng rng(14);
  Variable x(dpm::randn(Shape{300, 8}, rng)), w(dpm::randn(Shape{700, 8}, rng), true);
  Variable bias(Tensor::zeros(Shape{700}), true);
  Tensor g = dpm::randn(Shape{300, 700}, rng);
  dpm::linear(x, w, bias).backward(g);
  std::vector<float> vg = g.to_vector(), expected;
  for (int64_t j = 0; j < 700; ++j) {
    double s = 0;  // rows in order, in double: exactly the kernel's sum
    for (int64_t m = 0; m < 300; ++m) s += vg[static_cast<size_t>(m * 700 + j)];
    expected.push_back(static_cast<float>(s));
  }
  CHECK(bias.grad().to_vector() == expected);
}

TEST_CASE("matmul, bmm and linear: bad shapes are rejected", "[linalg]") {
  Variable a(Tensor::zeros(Shape{2, 3})), b(Tensor::zeros(Shape{4, 5}));
  CHECK_THROWS_WITH(dpm::matmul(a, b), Catch::Contains("matmul") && Catch::Contains("inner") &&
                                           Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]"));
  CHECK_THROWS_WITH(dpm::matmul(a, Variable(Tensor::zeros(Shape{3}))),
                    Catch::Contains("matmul") && Catch::Contains("2-D"));
  CHECK_THROWS_WITH(
      dpm::bmm(Variable(Tensor::zeros(Shape{2, 2, 3})), Variable(Tensor::zeros(Shape{3, 3, 2}))),
      Catch::Contains("bmm") && Catch::Contains("batch"));
  CHECK_THROWS_WITH(dpm::bmm(a, a), Catch::Contains("bmm") && Catch::Contains("3-D"));
  Variable w(Tensor::zeros(Shape{5, 4}));
  CHECK_THROWS_WITH(dpm::linear(a, w), Catch::Contains("linear") &&
                                           Catch::Contains("4 input features") &&
                                           Catch::Contains("has 3"));
  CHECK_THROWS_WITH(
      dpm::linear(Variable(Tensor::zeros(Shape{2, 4})), w, Variable(Tensor::zeros(Shape{4}))),
      Catch::Contains("linear") && Catch::Contains("bias") && Catch::Contains("[5]"));
}

// ---- activations ------------------------------------------------------------------------------

namespace {

struct ActivationCase {
  const char* name;
  std::function<Variable(const Variable&)> op;
  std::function<double(double)> value;
  std::function<double(double)> derivative;
};

double sigmoid_ref(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
double phi(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
}

const std::vector<ActivationCase>& activation_cases() {
  static const std::vector<ActivationCase> cases{
      {"relu", dpm::relu, [](double x) { return x > 0 ? x : 0.0; },
       [](double x) { return x > 0 ? 1.0 : 0.0; }},
      {"silu", dpm::silu, [](double x) { return x * sigmoid_ref(x); },
       [](double x) { return sigmoid_ref(x) * (1 + x * (1 - sigmoid_ref(x))); }},
      {"gelu", dpm::gelu, [](double x) { return x * phi(x); },
       [](double x) { return phi(x) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }},
      {"tanh", dpm::tanh, [](double x) { return std::tanh(x); },
       [](double x) { return 1 - std::tanh(x) * std::tanh(x); }},
      {"sigmoid", dpm::sigmoid, sigmoid_ref,
       [](double x) { return sigmoid_ref(x) * (1 - sigmoid_ref(x)); }},
  };
  return cases;
}

}  // namespace

TEST_CASE("activations: values and gradients against double formulas", "[activation]") {
  dpm::Rng rng(15);
  for (Shape shape : {Shape{5}, Shape{3, 40000}}) {  // the second runs split over threads
    Tensor x = dpm::rand_uniform(shape, rng, -6.0f, 6.0f);
    Tensor g = dpm::randn(shape, rng);
    std::vector<float> vx = x.to_vector(), vg = g.to_vector();
    for (const ActivationCase& c : activation_cases()) {
      INFO(c.name << " " << shape.str());
      Variable in(x, true);
      Variable out = c.op(in);
      out.backward(g);
      std::vector<double> value, grad;
      for (size_t i = 0; i < vx.size(); ++i) {
        value.push_back(c.value(vx[i]));
        grad.push_back(vg[i] * c.derivative(vx[i]));
      }
      check_close(out.data(), value, 2e-6);
      check_close(in.grad(), grad, 2e-6);
    }
  }
  // The sigmoid family stays finite far out in both tails; GELU is the exact erf form.
  Variable extremes(Tensor::from_vector(Shape{4}, {-200.0f, -120.0f, 120.0f, 200.0f}));
  CHECK(dpm::sigmoid(extremes).data().to_vector() == std::vector<float>{0, 0, 1, 1});
  CHECK(dpm::silu(extremes).data().to_vector() == std::vector<float>{-0.0f, -0.0f, 120, 200});
  CHECK(dpm::gelu(Variable(Tensor::scalar(1.0f))).item() ==
        Approx(0.8413447460685429).epsilon(1e-6));
}

TEST_CASE("activations: gradcheck", "[activation][gradcheck]") {
  dpm::Rng rng(16);
  // Away from relu's kink at 0.
  Tensor x = Tensor::from_vector(Shape{2, 4}, {-2.0f, -1.1f, -0.6f, -0.2f, 0.3f, 0.7f, 1.4f, 2.5f});
  for (const ActivationCase& c : activation_cases()) {
    INFO(c.name);
    check_gradients([&](const std::vector<Variable>& v) { return c.op(v[0]); },
                    {Variable(x, true)});
  }
}

TEST_CASE("softmax: values, stability and gradients", "[activation]") {
  dpm::Rng rng(17);
  Tensor x = dpm::randn(Shape{3, 4, 5}, rng, 0.0f, 2.0f);
  for (int dim : {0, 1, -1}) {
    INFO("dim " << dim);
    int d = dim < 0 ? dim + 3 : dim;
    Variable y = dpm::softmax(Variable(x), dim);
    REQUIRE(y.shape() == x.shape());
    std::vector<double> expected(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) {
      std::vector<int64_t> idx = unravel(i, x.shape());
      double total = 0;
      for (int64_t k = 0; k < x.size(d); ++k) {
        std::vector<int64_t> other = idx;
        other[static_cast<size_t>(d)] = k;
        total += std::exp(static_cast<double>(x.at({other[0], other[1], other[2]})));
      }
      expected[static_cast<size_t>(i)] =
          std::exp(static_cast<double>(x.at({idx[0], idx[1], idx[2]}))) / total;
    }
    check_close(y.data(), expected, 1e-6);
  }
  // Subtracting the maximum keeps huge logits finite.
  Variable big(Tensor::from_vector(Shape{1, 3}, {1000.0f, 1001.0f, 999.0f}));
  std::vector<float> p = dpm::softmax(big, -1).data().to_vector();
  double e0 = std::exp(-1.0), e2 = std::exp(-2.0), z = e0 + 1 + e2;
  CHECK(p[0] == Approx(e0 / z).epsilon(1e-6));
  CHECK(p[1] == Approx(1 / z).epsilon(1e-6));
  CHECK(p[2] == Approx(e2 / z).epsilon(1e-6));

  Variable leaf_x = uniform_leaf(Shape{3, 4}, rng, -2.0f, 2.0f);
  for (int dim : {0, -1})
    check_gradients([dim](const std::vector<Variable>& v) { return dpm::softmax(v[0], dim); },
                    {leaf_x});
  CHECK_THROWS_WITH(dpm::softmax(leaf_x, 2), Catch::Contains("softmax"));
}

// ---- loss -------------------------------------------------------------------------------------

TEST_CASE("mse_loss: value, gradients and shape check", "[loss]") {
  dpm::Rng rng(18);
  Tensor p = dpm::randn(Shape{4, 6}, rng), t = dpm::randn(Shape{4, 6}, rng);
  std::vector<float> vp = p.to_vector(), vt = t.to_vector();
  double total = 0;
  for (size_t i = 0; i < vp.size(); ++i) {
    double diff = static_cast<double>(vp[i]) - vt[i];
    total += diff * diff;
  }
  Variable loss = dpm::mse_loss(Variable(p), Variable(t));
  CHECK(loss.shape() == Shape{});
  CHECK(loss.item() == Approx(total / 24.0).epsilon(1e-6));
  check_gradients([](const std::vector<Variable>& v) { return dpm::mse_loss(v[0], v[1]); },
                  {uniform_leaf(Shape{2, 3}, rng), uniform_leaf(Shape{2, 3}, rng)});
  CHECK_THROWS_WITH(
      dpm::mse_loss(Variable(Tensor::zeros(Shape{2, 3})), Variable(Tensor::zeros(Shape{3, 2}))),
      Catch::Contains("mse_loss") && Catch::Contains("[2, 3]") && Catch::Contains("[3, 2]"));
}
