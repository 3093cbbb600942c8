#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "autograd/ops/norm.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "nn/batchnorm.hpp"

using dpm::Rng;
using dpm::Shape;
using dpm::Tensor;
using dpm::Variable;

namespace {

constexpr double kEps = 1e-5;

// x [B, C, *] seen as [B, C, S].
struct Dims {
  int64_t B, C, S;
};

Dims dims_of(const Shape& s) {
  Dims d{s[0], s[1], 1};
  for (int i = 2; i < s.ndim(); ++i) d.S *= s[i];
  return d;
}

std::vector<double> to_double(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// Naive reference: element (b, c, s) is normalised with the statistics of set set_of(b, c) (a
// channel for batch norm, a (sample, group) for group norm). When given_mean is empty the
// statistics are the sets' mean and biased variance, else the given ones (eval).
struct RefNorm {
  Dims d;
  std::function<int64_t(int64_t, int64_t)> set_of;
  int64_t sets;
  std::vector<double> given_mean = {}, given_var = {};

  // gamma, beta empty: no affine.
  std::vector<double> operator()(const std::vector<double>& x, const std::vector<double>& gamma,
                                 const std::vector<double>& beta) const {
    std::vector<double> mean(static_cast<size_t>(sets), 0.0), var(mean), count(mean);
    auto index = [&](int64_t b, int64_t c, int64_t s) {
      return static_cast<size_t>((b * d.C + c) * d.S + s);
    };
    auto for_each = [&](auto&& f) {
      for (int64_t b = 0; b < d.B; ++b)
        for (int64_t c = 0; c < d.C; ++c)
          for (int64_t s = 0; s < d.S; ++s) f(static_cast<size_t>(set_of(b, c)), c, index(b, c, s));
    };
    if (!given_mean.empty()) {
      mean = given_mean;
      var = given_var;
    } else {
      for_each([&](size_t k, int64_t, size_t i) { mean[k] += x[i], count[k] += 1; });
      for (size_t k = 0; k < mean.size(); ++k) mean[k] /= count[k];
      for_each([&](size_t k, int64_t, size_t i) { var[k] += (x[i] - mean[k]) * (x[i] - mean[k]); });
      for (size_t k = 0; k < var.size(); ++k) var[k] /= count[k];
    }
    std::vector<double> out(x.size());
    for_each([&](size_t k, int64_t c, size_t i) {
      double xhat = (x[i] - mean[k]) / std::sqrt(var[k] + kEps);
      size_t uc = static_cast<size_t>(c);
      out[i] = gamma.empty() ? xhat : xhat * gamma[uc] + beta[uc];
    });
    return out;
  }
};

RefNorm ref_batch_norm_train(Dims d) {
  return {d, [](int64_t, int64_t c) { return c; }, d.C};
}
RefNorm ref_batch_norm_eval(Dims d, const Tensor& running_mean, const Tensor& running_var) {
  return {d, [](int64_t, int64_t c) { return c; }, d.C, to_double(running_mean),
          to_double(running_var)};
}
RefNorm ref_group_norm(Dims d, int64_t groups) {
  int64_t per_group = d.C / groups;
  return {d, [=](int64_t b, int64_t c) { return b * groups + c / per_group; }, d.B * groups};
}

// Gradients of sum(r * ref(x, gamma, beta)) by central differences in double.
struct RefGrads {
  std::vector<double> dx, dgamma, dbeta;
};

RefGrads ref_grads(const RefNorm& ref, std::vector<double> x, std::vector<double> gamma,
                   std::vector<double> beta, const std::vector<double>& r) {
  auto loss = [&] {
    std::vector<double> out = ref(x, gamma, beta);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += r[i] * out[i];
    return s;
  };
  auto differentiate = [&](std::vector<double>& v) {
    std::vector<double> g(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      double saved = v[i], h = 1e-6 * std::max(1.0, std::fabs(saved));
      v[i] = saved + h;
      double plus = loss();
      v[i] = saved - h;
      double minus = loss();
      v[i] = saved;
      g[i] = (plus - minus) / (2 * h);
    }
    return g;
  };
  return {differentiate(x), differentiate(gamma), differentiate(beta)};
}

void check_close(const Tensor& got, const std::vector<double>& want, double atol, double rtol) {
  std::vector<float> g = got.to_vector();
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << want[i]);
    CHECK(std::fabs(g[i] - want[i]) <= atol + rtol * std::fabs(want[i]));
  }
}

// Non-centred data so that the statistics matter.
Tensor input(const Shape& shape, Rng& rng) {
  return dpm::randn(shape, rng, 3.0f, 2.0f);
}
Tensor positive(int64_t n, Rng& rng) {
  return dpm::rand_uniform({n}, rng, 0.5f, 1.5f);
}

const std::vector<Shape> kShapes{{4, 3}, {2, 5, 7}, {3, 4, 5, 6}};

// The modes under test: each builds the op's output and the matching reference.
struct Mode {
  std::string name;
  std::function<Variable(const Variable&, const Variable&, const Variable&)> op;
  RefNorm ref;
};

std::vector<Mode> modes_for(const Shape& shape, Rng& rng) {
  Dims d = dims_of(shape);
  std::vector<Mode> modes;
  modes.push_back({"batch_norm train",
                   [](const Variable& x, const Variable& w, const Variable& b) {
                     return dpm::batch_norm(x, Tensor(), Tensor(), w, b, true);
                   },
                   ref_batch_norm_train(d)});
  Tensor running_mean = dpm::randn({d.C}, rng), running_var = positive(d.C, rng);
  modes.push_back({"batch_norm eval",
                   [=](const Variable& x, const Variable& w, const Variable& b) {
                     return dpm::batch_norm(x, running_mean, running_var, w, b, false);
                   },
                   ref_batch_norm_eval(d, running_mean, running_var)});
  for (int64_t groups : {int64_t{1}, int64_t{2}, d.C}) {
    if (d.C % groups != 0) continue;
    int g = static_cast<int>(groups);
    modes.push_back({"group_norm, groups = " + std::to_string(groups),
                     [g](const Variable& x, const Variable& w, const Variable& b) {
                       return dpm::group_norm(x, g, w, b);
                     },
                     ref_group_norm(d, groups)});
  }
  return modes;
}

}  // namespace

TEST_CASE("normalisation forward matches a double reference", "[norm]") {
  Rng rng(1);
  for (const Shape& shape : kShapes)
    for (bool affine : {false, true})
      for (const Mode& mode : modes_for(shape, rng)) {
        INFO(mode.name << " on " << shape.str() << (affine ? " with affine" : " without affine"));
        int64_t C = shape[1];
        Tensor x = input(shape, rng);
        Tensor gamma = positive(C, rng), beta = dpm::randn({C}, rng);
        Variable w = affine ? Variable(gamma) : Variable(),
                 b = affine ? Variable(beta) : Variable();
        Variable out = mode.op(Variable(x), w, b);
        REQUIRE(out.shape() == shape);
        std::vector<double> g, bt;
        if (affine) g = to_double(gamma), bt = to_double(beta);
        check_close(out.data(), mode.ref(to_double(x), g, bt), 1e-5, 1e-5);
      }
}

TEST_CASE("normalisation accepts a non-contiguous input", "[norm]") {
  Rng rng(2);
  Tensor x = input({4, 3, 2}, rng).transpose(0, 2);  // [2, 3, 4], strided
  REQUIRE_FALSE(x.is_contiguous());
  Variable strided(x), dense(x.contiguous());
  CHECK(dpm::batch_norm(strided, Tensor(), Tensor(), {}, {}, true).data().to_vector() ==
        dpm::batch_norm(dense, Tensor(), Tensor(), {}, {}, true).data().to_vector());
  CHECK(dpm::group_norm(strided, 3, {}, {}).data().to_vector() ==
        dpm::group_norm(dense, 3, {}, {}).data().to_vector());
}

TEST_CASE("normalisation backward matches finite differences of the double reference", "[norm]") {
  Rng rng(3);
  for (const Shape& shape : kShapes)
    for (const Mode& mode : modes_for(shape, rng)) {
      INFO(mode.name << " on " << shape.str());
      int64_t C = shape[1];
      Variable x(input(shape, rng), true);
      Variable w(positive(C, rng), true), b(dpm::randn({C}, rng), true);
      Tensor r = dpm::randn(shape, rng);
      mode.op(x, w, b).backward(r);
      RefGrads want = ref_grads(mode.ref, to_double(x.data()), to_double(w.data()),
                                to_double(b.data()), to_double(r));
      check_close(x.grad(), want.dx, 2e-5, 1e-4);
      check_close(w.grad(), want.dgamma, 2e-5, 1e-4);
      check_close(b.grad(), want.dbeta, 2e-5, 1e-4);

      // Without affine, and only x needing a gradient.
      Variable x2(x.data(), true);
      mode.op(x2, {}, {}).backward(r);
      RefGrads plain = ref_grads(mode.ref, to_double(x.data()), {}, {}, to_double(r));
      check_close(x2.grad(), plain.dx, 2e-5, 1e-4);
    }
}

TEST_CASE("normalisation gradcheck", "[norm][gradcheck]") {
  Rng rng(4);
  Shape shape{3, 4, 3};
  std::vector<Variable> inputs{Variable(input(shape, rng), true), Variable(positive(4, rng), true),
                               Variable(dpm::randn({4}, rng), true)};
  Tensor running_mean = dpm::randn({4}, rng), running_var = positive(4, rng);

  auto check = [&](const char* name, const dpm::GradcheckFn& f) {
    dpm::GradcheckResult result = dpm::gradcheck(f, inputs);
    INFO(name << "\n" << result.report);
    CHECK(result.passed);
  };
  check("batch_norm train", [](const std::vector<Variable>& v) {
    return dpm::batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true);
  });
  check("batch_norm eval", [&](const std::vector<Variable>& v) {
    return dpm::batch_norm(v[0], running_mean, running_var, v[1], v[2], false);
  });
  for (int groups : {1, 2, 4}) {
    INFO("groups " << groups);
    check("group_norm", [groups](const std::vector<Variable>& v) {
      return dpm::group_norm(v[0], groups, v[1], v[2]);
    });
  }
}

TEST_CASE("batch_norm running statistics follow PyTorch's update", "[norm]") {
  // x [2, 2, 2]. Channel 0 holds {1, 3, 5, 7}: mean 4, biased var 5, unbiased 20/3.
  // Channel 1 holds {0, 0, 1, 3}: mean 1, biased var 1.5, unbiased 2.
  Tensor x = Tensor::from_vector({2, 2, 2}, {1, 3, 0, 0, 5, 7, 1, 3});
  // The second batch is x + 1: means 5 and 2, same variances.
  Tensor x2 = x.clone().add_(Tensor::ones({2, 2, 2}));

  struct Expected {
    float momentum;
    std::vector<double> mean1, var1, mean2, var2;
  };
  // r <- (1 - m) r + m stat from r = (0, 1): e.g. m = 0.1, channel 0: mean 0.1 * 4 = 0.4,
  // var 0.9 + 0.1 * 20/3; second call mean 0.9 * 0.4 + 0.1 * 5 = 0.86, var 0.9 * var1 + 0.1 * 20/3.
  std::vector<Expected> cases{{0.1f,
                               {0.4, 0.1},
                               {0.9 + 2.0 / 3, 1.1},
                               {0.86, 0.29},
                               {0.9 * (0.9 + 2.0 / 3) + 2.0 / 3, 1.19}},
                              {0.3f, {1.2, 0.3}, {2.7, 1.3}, {2.34, 0.81}, {3.89, 1.51}}};
  for (const Expected& e : cases) {
    INFO("momentum " << e.momentum);
    Tensor running_mean = Tensor::zeros({2}), running_var = Tensor::ones({2});
    Variable out =
        dpm::batch_norm(Variable(x), running_mean, running_var, {}, {}, true, e.momentum);
    check_close(running_mean, e.mean1, 1e-6, 1e-6);
    check_close(running_var, e.var1, 1e-6, 1e-6);
    // Normalisation uses the biased variance.
    std::vector<double> want;
    for (double v : {1, 3, 0, 0, 5, 7, 1, 3}) want.push_back(v);
    for (size_t i = 0; i < want.size(); ++i) {
      bool channel0 = (i / 2) % 2 == 0;
      want[i] =
          channel0 ? (want[i] - 4) / std::sqrt(5 + kEps) : (want[i] - 1) / std::sqrt(1.5 + kEps);
    }
    check_close(out.data(), want, 1e-6, 1e-6);

    dpm::batch_norm(Variable(x2), running_mean, running_var, {}, {}, true, e.momentum);
    check_close(running_mean, e.mean2, 1e-6, 1e-6);
    check_close(running_var, e.var2, 1e-6, 1e-6);

    // Eval normalises with the running statistics and leaves them alone.
    std::vector<float> mean_before = running_mean.to_vector(), var_before = running_var.to_vector();
    Tensor gamma = Tensor::from_vector({2}, {2, -1}), beta = Tensor::from_vector({2}, {0.5f, 1});
    Variable eval = dpm::batch_norm(Variable(x), running_mean, running_var, Variable(gamma),
                                    Variable(beta), false, e.momentum);
    CHECK(running_mean.to_vector() == mean_before);
    CHECK(running_var.to_vector() == var_before);
    std::vector<double> want_eval;
    std::vector<float> xv = x.to_vector();
    for (size_t i = 0; i < xv.size(); ++i) {
      size_t c = (i / 2) % 2;
      want_eval.push_back((xv[i] - e.mean2[c]) / std::sqrt(e.var2[c] + kEps) *
                              gamma.to_vector()[c] +
                          beta.to_vector()[c]);
    }
    check_close(eval.data(), want_eval, 1e-5, 1e-5);
  }
}

TEST_CASE("normalisation is bitwise repeatable", "[norm]") {
  Rng rng(5);
  Shape shape{8, 96, 64};  // enough channels and groups for parallel_for to split
  Tensor x = input(shape, rng), gamma = positive(96, rng), beta = dpm::randn({96}, rng);
  Tensor r = dpm::randn(shape, rng);

  // Output and the three gradients of one forward/backward, concatenated.
  auto run =
      [&](const std::function<Variable(const Variable&, const Variable&, const Variable&)>& op) {
        Variable vx(x, true), vw(gamma, true), vb(beta, true);
        Variable out = op(vx, vw, vb);
        out.backward(r);
        std::vector<float> all = out.data().to_vector();
        for (const Variable* v : {&vx, &vw, &vb}) {
          std::vector<float> g = v->grad().to_vector();
          all.insert(all.end(), g.begin(), g.end());
        }
        return all;
      };
  auto bn = [](const Variable& vx, const Variable& vw, const Variable& vb) {
    return dpm::batch_norm(vx, Tensor(), Tensor(), vw, vb, true);
  };
  auto gn = [](const Variable& vx, const Variable& vw, const Variable& vb) {
    return dpm::group_norm(vx, 8, vw, vb);
  };
  auto sync_bn = [](const Variable& vx, const Variable& vw, const Variable& vb) {
    return dpm::batch_norm(vx, Tensor(), Tensor(), vw, vb, true, 0.1f, 1e-5f,
                           [](double*, int64_t) {});
  };
  for (const auto& op : {std::function(bn), std::function(gn), std::function(sync_bn)}) {
    dpm::set_num_threads(2);
    std::vector<float> first = run(op), second = run(op);
    REQUIRE(first.size() == second.size());
    CHECK(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)) == 0);
    // Each statistic is one serial loop, so even the thread count does not change the bits.
    dpm::set_num_threads(1);
    std::vector<float> serial = run(op);
    CHECK(std::memcmp(first.data(), serial.data(), first.size() * sizeof(float)) == 0);
  }
  dpm::set_num_threads(0);
}

TEST_CASE("normalisation rejects bad shapes with clear messages", "[norm]") {
  Variable x(Tensor::ones({2, 3, 4}));
  Variable vec(Tensor::ones({3}));
  Variable w4(Tensor::ones({4}));
  Tensor r3 = Tensor::zeros({3}), r4 = Tensor::zeros({4});
  using Catch::Contains;

  CHECK_THROWS_WITH(dpm::batch_norm(vec, Tensor(), Tensor(), {}, {}, true),
                    Contains("batch_norm") && Contains("at least 2 dims") && Contains("[3]"));
  CHECK_THROWS_WITH(dpm::batch_norm(x, Tensor(), Tensor(), w4, {}, true),
                    Contains("batch_norm: weight has shape [4], expected [3]"));
  CHECK_THROWS_WITH(dpm::batch_norm(x, Tensor(), Tensor(), {}, w4, true),
                    Contains("batch_norm: bias has shape [4], expected [3]"));
  CHECK_THROWS_WITH(dpm::batch_norm(x, r3, r4, {}, {}, true),
                    Contains("batch_norm: running_var has shape [4], expected [3]"));
  CHECK_THROWS_WITH(dpm::batch_norm(x, r4, r3, {}, {}, false),
                    Contains("batch_norm: running_mean has shape [4], expected [3]"));
  CHECK_THROWS_WITH(dpm::batch_norm(x, r3, Tensor(), {}, {}, true),
                    Contains("batch_norm") && Contains("both"));
  CHECK_THROWS_WITH(dpm::batch_norm(x, Tensor(), Tensor(), {}, {}, false),
                    Contains("batch_norm: eval mode") && Contains("running_mean"));
  CHECK_THROWS_WITH(
      dpm::batch_norm(Variable(Tensor::ones({1, 3})), Tensor(), Tensor(), {}, {}, true),
      Contains("batch_norm") && Contains("more than one value per channel"));

  CHECK_THROWS_WITH(dpm::group_norm(vec, 1, {}, {}),
                    Contains("group_norm") && Contains("at least 2 dims"));
  CHECK_THROWS_WITH(dpm::group_norm(x, 2, {}, {}),
                    Contains("group_norm: groups must be positive and divide the 3 channels") &&
                        Contains("groups = 2"));
  CHECK_THROWS_WITH(dpm::group_norm(x, 0, {}, {}), Contains("groups = 0"));
  CHECK_THROWS_WITH(dpm::group_norm(x, 3, w4, {}),
                    Contains("group_norm: weight has shape [4], expected [3]"));
}

// ---- Synchronised batch statistics (batch_norm with a StatisticsReducer) ----

namespace {

using dpm::StatisticsReducer;

// The identity (one process) that also records the count of every call.
StatisticsReducer recording_identity(std::vector<int64_t>& calls) {
  return [&calls](double*, int64_t count) { calls.push_back(count); };
}

// got and want within atol + rtol * |want|, elementwise.
void check_same(const Tensor& got, const Tensor& want, double atol = 1e-6, double rtol = 1e-5) {
  check_close(got, to_double(want), atol, rtol);
}

// A data-parallel group of two simulated processes that run one after the other. Rank r's
// reducer records what it is given (its k-th call of the round) and adds what the other rank gave
// at its k-th call of the previous round. A forward's contribution depends only on the process's
// own input, and a backward's on the forward's reduced statistics, so from the third round on
// every call adds exactly what the other rank contributes in the same round: settled() checks it,
// and then each call returns the true group sum, a + b on one rank and b + a (the same bits) on
// the other, as an all-reduce would.
struct SimulatedPair {
  std::vector<std::vector<double>> given[2], previous[2];

  StatisticsReducer reducer(int rank) {
    return [this, rank](double* values, int64_t count) {
      size_t call = given[rank].size();
      given[rank].emplace_back(values, values + count);
      const std::vector<std::vector<double>>& other = previous[1 - rank];
      if (call >= other.size()) return;
      REQUIRE(other[call].size() == static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) values[i] += other[call][static_cast<size_t>(i)];
    };
  }
  void next_round() {
    for (int r : {0, 1}) {
      previous[r] = std::move(given[r]);
      given[r].clear();
    }
  }
  bool settled() const { return given[0] == previous[0] && given[1] == previous[1]; }
};

// One process's (or the whole batch's) training step: forward on its rows with fresh leaves and
// copies of the running statistics, backward with the matching rows of the upstream gradient.
struct Step {
  Variable x, w, b, out;
  Tensor running_mean, running_var;
};

Step train_step(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& r,
                const Tensor& running_mean, const Tensor& running_var,
                const StatisticsReducer& reduce) {
  Step s;
  s.x = Variable(x.contiguous(), true);
  s.w = Variable(gamma, true);
  s.b = Variable(beta, true);
  s.running_mean = running_mean.clone();
  s.running_var = running_var.clone();
  s.out = dpm::batch_norm(s.x, s.running_mean, s.running_var, s.w, s.b, true, 0.1f, 1e-5f, reduce);
  s.out.backward(r.contiguous());
  return s;
}

}  // namespace

TEST_CASE("synchronised batch_norm with the identity reducer equals the unsynchronised op",
          "[norm][sync]") {
  Rng rng(6);
  for (const Shape& shape : {Shape{4, 3, 5}, Shape{3, 4, 5, 6}, Shape{6, 2}})
    for (bool affine : {true, false}) {
      INFO(shape.str() << (affine ? " with affine" : " without affine"));
      int64_t C = shape[1];
      Tensor x = input(shape, rng), r = dpm::randn(shape, rng);
      Tensor gamma = positive(C, rng), beta = dpm::randn({C}, rng);
      Tensor running_mean = dpm::randn({C}, rng), running_var = positive(C, rng);
      // Gradients already holding something: backward must add to them.
      Tensor seed_x = dpm::randn(shape, rng), seed_w = dpm::randn({C}, rng),
             seed_b = dpm::randn({C}, rng);

      struct Run {
        Variable x, w, b, out;
        Tensor running_mean, running_var;
      };
      auto run = [&](const StatisticsReducer& reduce) {
        Run s;
        s.x = Variable(x, true);
        if (affine) s.w = Variable(gamma, true), s.b = Variable(beta, true);
        s.running_mean = running_mean.clone();
        s.running_var = running_var.clone();
        s.x.set_grad(seed_x.clone());
        if (affine) s.w.set_grad(seed_w.clone()), s.b.set_grad(seed_b.clone());
        s.out = dpm::batch_norm(s.x, s.running_mean, s.running_var, s.w, s.b, true, 0.2f, 1e-5f,
                                reduce);
        s.out.backward(r);
        return s;
      };
      std::vector<int64_t> calls;
      Run plain = run({}), sync = run(recording_identity(calls));
      CHECK(calls == std::vector<int64_t>{3 * C, 2 * C});  // one forward call, one backward call
      check_same(sync.out.data(), plain.out.data());
      check_same(sync.running_mean, plain.running_mean);
      check_same(sync.running_var, plain.running_var);
      check_same(sync.x.grad(), plain.x.grad());
      if (affine) {
        check_same(sync.w.grad(), plain.w.grad());
        check_same(sync.b.grad(), plain.b.grad());
      }
    }
}

TEST_CASE("synchronised batch_norm calls the reducer only in training, and in every backward",
          "[norm][sync]") {
  Rng rng(7);
  Shape shape{4, 3, 2};
  Tensor x = input(shape, rng);
  Tensor running_mean = Tensor::zeros({3}), running_var = Tensor::ones({3});
  std::vector<int64_t> calls;
  StatisticsReducer identity = recording_identity(calls);

  // Eval: running statistics, no collective, the same bits as without a reducer.
  Variable w(positive(3, rng), true);
  Variable eval = dpm::batch_norm(Variable(x, true), running_mean, running_var, w, {}, false, 0.1f,
                                  1e-5f, identity);
  eval.backward(Tensor::ones(shape));
  CHECK(calls.empty());
  CHECK(eval.data().to_vector() ==
        dpm::batch_norm(Variable(x), running_mean, running_var, w, {}, false).data().to_vector());

  // Training where only the weight needs a gradient: backward still joins the collective.
  Variable out =
      dpm::batch_norm(Variable(x), running_mean, running_var, w, {}, true, 0.1f, 1e-5f, identity);
  CHECK(calls == std::vector<int64_t>{9});
  out.backward(Tensor::ones(shape), /*retain_graph=*/true);
  out.backward(Tensor::ones(shape));
  CHECK(calls == std::vector<int64_t>{9, 6, 6});

  // Nothing needs a gradient: no backward, so no second call.
  calls.clear();
  dpm::batch_norm(Variable(x), Tensor(), Tensor(), {}, {}, true, 0.1f, 1e-5f, identity);
  CHECK(calls == std::vector<int64_t>{9});
}

TEST_CASE("synchronised batch_norm gradcheck with the identity reducer",
          "[norm][sync][gradcheck]") {
  Rng rng(8);
  std::vector<int64_t> calls;
  StatisticsReducer identity = recording_identity(calls);
  for (const Shape& shape : {Shape{3, 4, 3}, Shape{2, 3, 2, 3}}) {
    INFO(shape.str());
    int64_t C = shape[1];
    std::vector<Variable> inputs{Variable(input(shape, rng), true),
                                 Variable(positive(C, rng), true),
                                 Variable(dpm::randn({C}, rng), true)};
    dpm::GradcheckResult affine = dpm::gradcheck(
        [&](const std::vector<Variable>& v) {
          return dpm::batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true, 0.1f, 1e-5f, identity);
        },
        inputs);
    INFO("affine\n" << affine.report);
    CHECK(affine.passed);
    dpm::GradcheckResult plain = dpm::gradcheck(
        [&](const std::vector<Variable>& v) {
          return dpm::batch_norm(v[0], Tensor(), Tensor(), {}, {}, true, 0.1f, 1e-5f, identity);
        },
        {inputs[0]});
    INFO("without affine\n" << plain.report);
    CHECK(plain.passed);
  }
  CHECK_FALSE(calls.empty());
}

TEST_CASE("synchronised batch_norm over two simulated processes equals the whole batch's",
          "[norm][sync]") {
  Rng rng(9);
  // Rows [0, split) on rank 0, [split, 8) on rank 1; split 1 leaves rank 0 a single sample, which
  // an [8, C] input allows only because the statistics are the group's.
  for (const Shape& shape : {Shape{8, 3}, Shape{8, 3, 5}, Shape{8, 2, 3, 4}})
    for (int64_t split : {4, 3, 1}) {
      INFO(shape.str() << " split at row " << split);
      int64_t B = shape[0], C = shape[1];
      Tensor x = input(shape, rng), r = dpm::randn(shape, rng);
      Tensor gamma = positive(C, rng), beta = dpm::randn({C}, rng);
      Tensor running_mean = dpm::randn({C}, rng), running_var = positive(C, rng);
      Step full = train_step(x, gamma, beta, r, running_mean, running_var, {});

      const int64_t first[2] = {0, split}, rows[2] = {split, B - split};
      SimulatedPair pair;
      std::vector<Step> ranks;
      for (int round = 0; round < 3; ++round) {
        if (round > 0) pair.next_round();
        ranks.clear();
        for (int rank : {0, 1}) {
          auto step = [&] {
            return train_step(x.narrow(0, first[rank], rows[rank]), gamma, beta,
                              r.narrow(0, first[rank], rows[rank]), running_mean, running_var,
                              pair.reducer(rank));
          };
          if (round > 0) {
            ranks.push_back(step());
            continue;
          }
          // The first round only collects the contributions; its reductions miss the other
          // rank's, so a rank holding one sample is refused after its reducer recorded them.
          try {
            step();
          } catch (const std::invalid_argument& e) {
            INFO(e.what());
            CHECK(split == 1);
          }
        }
      }
      REQUIRE(pair.settled());
      REQUIRE(pair.given[0].size() == 2);  // one forward and one backward call per rank
      CHECK(pair.given[0][0].size() == static_cast<size_t>(3 * C));
      CHECK(pair.given[0][1].size() == static_cast<size_t>(2 * C));

      for (int rank : {0, 1}) {
        INFO("rank " << rank);
        const Step& s = ranks[static_cast<size_t>(rank)];
        auto own_rows = [&](const Tensor& t) {
          return t.narrow(0, first[rank], rows[rank]).contiguous();
        };
        check_same(s.out.data(), own_rows(full.out.data()), 1e-5, 1e-5);
        check_same(s.x.grad(), own_rows(full.x.grad()), 1e-5, 1e-5);
        check_same(s.running_mean, full.running_mean, 1e-6, 1e-5);
        check_same(s.running_var, full.running_var, 1e-6, 1e-5);
      }
      // Every process holds the same running statistics, to the bit.
      CHECK(ranks[0].running_mean.to_vector() == ranks[1].running_mean.to_vector());
      CHECK(ranks[0].running_var.to_vector() == ranks[1].running_var.to_vector());
      // The parameter gradients are local: their sum over the group is the whole batch's.
      check_same(ranks[0].w.grad().clone().add_(ranks[1].w.grad()), full.w.grad(), 1e-5, 1e-5);
      check_same(ranks[0].b.grad().clone().add_(ranks[1].b.grad()), full.b.grad(), 1e-5, 1e-5);
      // ... each being the process's own: dbeta of rank 0 sums its rows of r only.
      int64_t S = shape.numel() / (B * C);
      std::vector<float> r0 = r.narrow(0, 0, split).to_vector();
      std::vector<double> own_dbeta(static_cast<size_t>(C), 0.0);
      for (size_t i = 0; i < r0.size(); ++i)
        own_dbeta[(i / static_cast<size_t>(S)) % static_cast<size_t>(C)] += r0[i];
      check_close(ranks[0].b.grad(), own_dbeta, 1e-5, 1e-5);
    }
}

TEST_CASE("synchronised batch_norm needs more than one value per channel over the group",
          "[norm][sync]") {
  using Catch::Contains;
  Tensor x = Tensor::from_vector({1, 3}, {1, 2, 3});
  Tensor beta = Tensor::from_vector({3}, {0.5f, -1, 2});
  std::vector<int64_t> calls;
  CHECK_THROWS_WITH(dpm::batch_norm(Variable(x), Tensor(), Tensor(), {}, {}, true, 0.1f, 1e-5f,
                                    recording_identity(calls)),
                    Contains("batch_norm: synchronised training") &&
                        Contains("over the group, got 1") && Contains("[1, 3]"));
  // Two processes holding the same sample: count 2, variance 0, so the output is beta.
  StatisticsReducer twins = [](double* values, int64_t count) {
    for (int64_t i = 0; i < count; ++i) values[i] *= 2;
  };
  Variable out = dpm::batch_norm(Variable(x), Tensor(), Tensor(), {}, Variable(beta), true, 0.1f,
                                 1e-5f, twins);
  check_close(out.data(), to_double(beta.view({1, 3})), 1e-6, 0);
}

TEST_CASE("nn::BatchNorm passes its statistics reducer in training only", "[norm][sync]") {
  Rng rng(10);
  Shape shape{4, 3, 2, 2};
  Tensor x = input(shape, rng);
  dpm::nn::BatchNorm plain(3), sync(3);
  CHECK_FALSE(sync.synchronised());
  std::vector<int64_t> calls;
  sync.set_statistics_reducer(recording_identity(calls));
  CHECK(sync.synchronised());

  plain.train();
  sync.train();
  Variable want = plain.forward(Variable(x));
  Variable got = sync.forward(Variable(x));
  CHECK(calls == std::vector<int64_t>{9});
  check_same(got.data(), want.data());
  check_same(sync.running_mean(), plain.running_mean());
  check_same(sync.running_var(), plain.running_var());
  CHECK(sync.num_batches_tracked().item() == 1.0f);
  got.backward(Tensor::ones(shape));
  CHECK(calls == std::vector<int64_t>{9, 6});

  sync.eval();
  Variable eval = sync.forward(Variable(x));
  CHECK(calls.size() == 2);  // eval: running statistics, no collective
  plain.eval();
  check_same(eval.data(), plain.forward(Variable(x)).data());

  sync.set_statistics_reducer({});
  CHECK_FALSE(sync.synchronised());
}
