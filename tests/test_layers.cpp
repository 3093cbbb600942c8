#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "autograd/rng.hpp"
#include "nn/activation.hpp"
#include "nn/attention.hpp"
#include "nn/batchnorm.hpp"
#include "nn/conv.hpp"
#include "nn/film.hpp"
#include "nn/groupnorm.hpp"
#include "nn/linear.hpp"
#include "nn/resample.hpp"
#include "nn/resblock.hpp"
#include "nn/sequential.hpp"
#include "nn/time_embedding.hpp"

using namespace dpm;
using namespace dpm::nn;

namespace {

Variable random_input(const Shape& shape, Rng& rng, bool requires_grad = true) {
  return Variable(randn(shape, rng), requires_grad);
}

// gradcheck clones its inputs into fresh leaves. To check a module's parameters as well, the
// inputs are {data inputs..., parameters...} and each call rebinds the module's parameters to
// the leaves: data (so perturbations are seen) and gradient (so backward lands in the leaf).
GradcheckResult gradcheck_module(
    Module& module, const std::vector<Variable>& data_inputs,
    const std::function<Variable(const std::vector<Variable>&)>& forward) {
  std::vector<Variable> parameters = module.parameters();
  std::vector<Variable> inputs = data_inputs;
  for (const Variable& p : parameters) inputs.push_back(p);
  const size_t first = data_inputs.size();
  auto forward_on_leaves = [&](const std::vector<Variable>& leaves) {
    for (size_t i = 0; i < parameters.size(); ++i) {
      Variable leaf = leaves[first + i];
      parameters[i].data() = leaf.data();
      parameters[i].set_grad(leaf.grad_buffer());
    }
    return forward(leaves);
  };
  return gradcheck(forward_on_leaves, inputs);
}

void check_passed(const GradcheckResult& result) {
  INFO(result.report);
  CHECK(result.passed);
}

}  // namespace

TEST_CASE("Linear: PyTorch default init range, forward, gradcheck", "[layers]") {
  Rng rng(1);
  Linear layer(5, 3, rng);
  CHECK(layer.weight().shape() == Shape{3, 5});
  CHECK(layer.bias().shape() == Shape{3});
  const float bound = 1.0f / std::sqrt(5.0f);
  for (float w : layer.weight().data().to_vector()) CHECK(std::fabs(w) <= bound);
  for (float b : layer.bias().data().to_vector()) CHECK(std::fabs(b) <= bound);
  auto named = layer.named_parameters();
  REQUIRE(named.size() == 2);
  CHECK((named[0].name == "weight" && named[0].weight_decay));
  CHECK((named[1].name == "bias" && !named[1].weight_decay));

  Variable x = random_input({2, 4, 5}, rng);  // leading dims pass through
  Variable y = layer(x);
  CHECK(y.shape() == Shape{2, 4, 3});
  // y[0, 1, 2] against a double loop
  double expect = layer.bias().data().at({2});
  for (int64_t i = 0; i < 5; ++i)
    expect += static_cast<double>(layer.weight().data().at({2, i})) * x.data().at({0, 1, i});
  CHECK(y.data().at({0, 1, 2}) == Approx(expect).epsilon(1e-5));

  check_passed(gradcheck_module(layer, {random_input({3, 5}, rng)},
                                [&](const auto& v) { return layer(v[0]); }));
  Linear no_bias(4, 2, rng, /*bias=*/false);
  CHECK(no_bias.named_parameters().size() == 1);
  CHECK_THROWS_AS(Linear(0, 2, rng), std::invalid_argument);
}

TEST_CASE("Conv1d / Conv2d: shapes, init, padding modes, gradcheck", "[layers]") {
  Rng rng(2);
  SECTION("Conv1d zero padding, stride 1") {
    Conv1d conv({.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = 1}, rng);
    CHECK(conv.weight().shape() == Shape{3, 2, 3});
    const float bound = 1.0f / std::sqrt(6.0f);
    for (float w : conv.weight().data().to_vector()) CHECK(std::fabs(w) <= bound);
    Variable x = random_input({2, 2, 6}, rng);
    CHECK(conv(x).shape() == Shape{2, 3, 6});
    check_passed(gradcheck_module(conv, {x}, [&](const auto& v) { return conv(v[0]); }));
  }
  SECTION("Conv1d replicate padding, stride 2, no bias") {
    Conv1d conv({.in_channels = 2,
                 .out_channels = 2,
                 .kernel_size = 3,
                 .stride = 2,
                 .padding = 1,
                 .padding_mode = PaddingMode::replicate,
                 .bias = false},
                rng);
    CHECK(conv.named_parameters().size() == 1);
    Variable x = random_input({2, 2, 7}, rng);
    CHECK(conv(x).shape() == Shape{2, 2, 4});
    check_passed(gradcheck_module(conv, {x}, [&](const auto& v) { return conv(v[0]); }));
  }
  SECTION("Conv2d replicate padding") {
    Conv2d conv({.in_channels = 2,
                 .out_channels = 2,
                 .kernel_size = 3,
                 .padding = 1,
                 .padding_mode = PaddingMode::replicate},
                rng);
    CHECK(conv.weight().shape() == Shape{2, 2, 3, 3});
    const float bound = 1.0f / std::sqrt(18.0f);
    for (float w : conv.weight().data().to_vector()) CHECK(std::fabs(w) <= bound);
    Variable x = random_input({2, 2, 4, 4}, rng);
    CHECK(conv(x).shape() == Shape{2, 2, 4, 4});
    check_passed(gradcheck_module(conv, {x}, [&](const auto& v) { return conv(v[0]); }));
  }
  SECTION("Conv2d zero padding, stride 2") {
    Conv2d conv({.in_channels = 1, .out_channels = 2, .kernel_size = 3, .stride = 2, .padding = 1},
                rng);
    Variable x = random_input({1, 1, 5, 5}, rng);
    CHECK(conv(x).shape() == Shape{1, 2, 3, 3});
    check_passed(gradcheck_module(conv, {x}, [&](const auto& v) { return conv(v[0]); }));
  }
  CHECK_THROWS_AS(Conv1d({.in_channels = 0}, rng), std::invalid_argument);
  CHECK(make_conv(2, {}, rng)->type_name() == "Conv2d");
  CHECK_THROWS_AS(make_conv(3, {}, rng), std::invalid_argument);
}

TEST_CASE("BatchNorm: init, buffers, gradcheck in train and eval", "[layers]") {
  Rng rng(3);
  BatchNorm2d bn(3);
  CHECK(bn.weight().data().to_vector() == std::vector<float>{1, 1, 1});
  CHECK(bn.bias().data().to_vector() == std::vector<float>{0, 0, 0});
  for (const auto& p : bn.named_parameters()) CHECK_FALSE(p.weight_decay);
  auto buffers = bn.named_buffers();
  REQUIRE(buffers.size() == 3);
  CHECK(buffers[0].first == "running_mean");
  CHECK(buffers[1].first == "running_var");
  CHECK(buffers[2].first == "num_batches_tracked");
  CHECK(buffers[2].second.shape() == Shape{});

  // Non-trivial affine parameters so their gradients are checked away from the identity.
  bn.weight().data().copy_(rand_uniform({3}, rng, 0.5f, 1.5f));
  bn.bias().data().copy_(randn({3}, rng));
  Variable x = random_input({3, 3, 2, 2}, rng);
  SECTION("train") {
    check_passed(gradcheck_module(bn, {x}, [&](const auto& v) { return bn(v[0]); }));
  }
  SECTION("eval") {
    bn.running_mean().copy_(randn({3}, rng));
    bn.running_var().copy_(rand_uniform({3}, rng, 0.5f, 2.0f));
    bn.eval();
    check_passed(gradcheck_module(bn, {x}, [&](const auto& v) { return bn(v[0]); }));
  }
}

TEST_CASE("BatchNorm: train() updates running stats, eval() uses them and changes nothing",
          "[layers]") {
  Rng rng(4);
  BatchNorm1d bn(2);
  Variable x = random_input({4, 2, 5}, rng, false);
  const std::vector<float> data = x.data().to_vector();

  // Batch statistics per channel, in double.
  std::vector<double> mean(2, 0), var_biased(2, 0);
  const int64_t count = 4 * 5;
  for (int64_t c = 0; c < 2; ++c) {
    for (int64_t b = 0; b < 4; ++b)
      for (int64_t l = 0; l < 5; ++l) mean[c] += x.data().at({b, c, l});
    mean[c] /= count;
    for (int64_t b = 0; b < 4; ++b)
      for (int64_t l = 0; l < 5; ++l) {
        double d = x.data().at({b, c, l}) - mean[c];
        var_biased[c] += d * d;
      }
    var_biased[c] /= count;
  }

  bn.train();
  Variable y = bn(x);
  for (int64_t c = 0; c < 2; ++c) {
    CHECK(bn.running_mean().to_vector()[c] == Approx(0.1 * mean[c]).margin(1e-6));
    double unbiased = var_biased[c] * count / (count - 1);
    CHECK(bn.running_var().to_vector()[c] == Approx(0.9 + 0.1 * unbiased).epsilon(1e-5));
    double expect = (x.data().at({1, c, 3}) - mean[c]) / std::sqrt(var_biased[c] + 1e-5);
    CHECK(y.data().at({1, c, 3}) == Approx(expect).epsilon(1e-4).margin(1e-5));
  }
  CHECK(bn.num_batches_tracked().item() == 1.0f);

  bn.eval();
  const std::vector<float> running_mean = bn.running_mean().to_vector();
  const std::vector<float> running_var = bn.running_var().to_vector();
  Variable z = bn(x);
  CHECK(bn.running_mean().to_vector() == running_mean);
  CHECK(bn.running_var().to_vector() == running_var);
  CHECK(bn.num_batches_tracked().item() == 1.0f);
  CHECK(x.data().to_vector() == data);
  for (int64_t c = 0; c < 2; ++c) {
    double expect = (x.data().at({2, c, 0}) - running_mean[c]) / std::sqrt(running_var[c] + 1e-5);
    CHECK(z.data().at({2, c, 0}) == Approx(expect).epsilon(1e-5).margin(1e-6));
  }
  // eval is deterministic: the same input gives the same output bitwise.
  CHECK(bn(x).data().to_vector() == z.data().to_vector());
}

TEST_CASE("GroupNorm: normalises per sample and group, gradcheck", "[layers]") {
  Rng rng(5);
  GroupNorm gn(2, 4);
  for (const auto& p : gn.named_parameters()) CHECK_FALSE(p.weight_decay);
  Variable x = random_input({2, 4, 3}, rng);
  Variable y = gn(x);
  // Sample 1, group 1 (channels 2 and 3): mean 0, biased variance ~1.
  double s = 0, s2 = 0;
  for (int64_t c = 2; c < 4; ++c)
    for (int64_t l = 0; l < 3; ++l) {
      s += y.data().at({1, c, l});
      s2 += static_cast<double>(y.data().at({1, c, l})) * y.data().at({1, c, l});
    }
  CHECK(s / 6 == Approx(0).margin(1e-5));
  CHECK(s2 / 6 == Approx(1).epsilon(1e-3));
  gn.weight().data().copy_(rand_uniform({4}, rng, 0.5f, 1.5f));
  gn.bias().data().copy_(randn({4}, rng));
  check_passed(gradcheck_module(gn, {x}, [&](const auto& v) { return gn(v[0]); }));
  CHECK_THROWS_AS(GroupNorm(3, 4), std::invalid_argument);
}

TEST_CASE("activation layers wrap their functions, Sequential chains and names", "[layers]") {
  Rng rng(6);
  Variable x = random_input({2, 3}, rng);
  CHECK(SiLU()(x).data().to_vector() == silu(x).data().to_vector());
  CHECK(ReLU()(x).data().to_vector() == relu(x).data().to_vector());
  CHECK(GELU()(x).data().to_vector() == gelu(x).data().to_vector());
  CHECK(Tanh()(x).data().to_vector() == dpm::tanh(x).data().to_vector());
  CHECK(Sigmoid()(x).data().to_vector() == sigmoid(x).data().to_vector());
  CHECK(SiLU().type_name() == "SiLU");

  auto first = std::make_shared<Linear>(3, 4, rng);
  auto last = std::make_shared<Linear>(4, 2, rng);
  Sequential seq{first, std::make_shared<Tanh>(), last};
  CHECK(seq.size() == 3);
  std::vector<std::string> names;
  for (const auto& p : seq.named_parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  Variable expect = (*last)(dpm::tanh((*first)(x)));
  CHECK(seq(x).data().to_vector() == expect.data().to_vector());
  check_passed(gradcheck_module(seq, {x}, [&](const auto& v) { return seq(v[0]); }));
}

TEST_CASE("AvgPool and Upsample pick 1-D or 2-D by rank", "[layers]") {
  Rng rng(7);
  AvgPool pool(2);
  Upsample up(2);
  Variable x1 = random_input({2, 3, 8}, rng);
  Variable x2 = random_input({2, 3, 6, 6}, rng);
  CHECK(pool(x1).shape() == Shape{2, 3, 4});
  CHECK(pool(x2).shape() == Shape{2, 3, 3, 3});
  CHECK(up(x1).shape() == Shape{2, 3, 16});
  CHECK(up(x2).shape() == Shape{2, 3, 12, 12});
  CHECK(pool(x1).data().at({1, 2, 1}) ==
        Approx(0.5 * (x1.data().at({1, 2, 2}) + x1.data().at({1, 2, 3}))));
  CHECK(up(x2).data().at({0, 1, 5, 2}) == x2.data().at({0, 1, 2, 1}));
  CHECK_THROWS_AS(pool(random_input({2, 3}, rng)), std::invalid_argument);
  CHECK_THROWS_AS(Upsample(0), std::invalid_argument);
}

TEST_CASE("SinusoidalTimeEmbedding matches the protocol's formula", "[layers]") {
  SinusoidalTimeEmbedding embedding(16);
  std::vector<int64_t> steps{0, 1, 7, 299, 9999};
  Variable e = embedding.forward(steps);
  REQUIRE(e.shape() == Shape{5, 16});
  CHECK_FALSE(e.requires_grad());
  const int half = 8;
  for (size_t b = 0; b < steps.size(); ++b)
    for (int k = 0; k < half; ++k) {
      double f = std::exp(-std::log(10000.0) * k / (half - 1));
      double angle = static_cast<double>(steps[b]) * f;
      auto row = static_cast<int64_t>(b);
      CHECK(e.data().at({row, k}) == Approx(std::sin(angle)).margin(1e-6));
      CHECK(e.data().at({row, half + k}) == Approx(std::cos(angle)).margin(1e-6));
    }
  // k = 0 has frequency 1, the last one 1/10000.
  CHECK(e.data().at({2, 0}) == Approx(std::sin(7.0)).margin(1e-7));
  CHECK(e.data().at({4, 7}) == Approx(std::sin(0.9999)).margin(1e-6));
  CHECK_THROWS_AS(embedding.forward({-1}), std::invalid_argument);
  CHECK_THROWS_AS(SinusoidalTimeEmbedding(7), std::invalid_argument);
  CHECK_THROWS_AS(SinusoidalTimeEmbedding(2), std::invalid_argument);
}

TEST_CASE("FiLM: h * (1 + scale) + shift from Linear(SiLU(temb)), gradcheck", "[layers]") {
  Rng rng(8);
  FiLM film(4, 3, rng);
  auto named = film.named_parameters();
  REQUIRE(named.size() == 2);
  CHECK(named[0].name == "proj.weight");
  CHECK(named[0].variable.shape() == Shape{6, 4});
  Variable h = random_input({2, 3, 5}, rng);
  Variable temb = random_input({2, 4}, rng);
  Variable y = film.forward(h, temb);
  REQUIRE(y.shape() == h.shape());
  // Reference for sample 1, channel 2, position 4: scale is row 2 of proj, shift row 5.
  Linear& proj = dynamic_cast<Linear&>(*film.named_children()[0].second);
  auto project = [&](int64_t row) {
    double s = proj.bias().data().at({row});
    for (int64_t i = 0; i < 4; ++i) {
      double t = temb.data().at({1, i});
      s += proj.weight().data().at({row, i}) * (t / (1 + std::exp(-t)));
    }
    return s;
  };
  double expect = h.data().at({1, 2, 4}) * (1 + project(2)) + project(5);
  CHECK(y.data().at({1, 2, 4}) == Approx(expect).epsilon(1e-5));
  check_passed(
      gradcheck_module(film, {h, temb}, [&](const auto& v) { return film.forward(v[0], v[1]); }));
  CHECK_THROWS_AS(film.forward(random_input({2, 4, 5}, rng), temb), std::invalid_argument);
}

TEST_CASE("ResBlock: the paper's structure, bypass only when channels change, gradcheck",
          "[layers]") {
  Rng rng(9);
  ResBlock changing({.in_channels = 2, .out_channels = 3, .time_dim = 4, .spatial_dims = 1}, rng);
  ResBlock same({.in_channels = 3, .out_channels = 3, .time_dim = 4, .spatial_dims = 2}, rng);
  CHECK(changing.has_bypass_conv());
  CHECK_FALSE(same.has_bypass_conv());
  std::vector<std::string> children;
  for (const auto& [name, child] : changing.named_children())
    children.push_back(name + ":" + child->type_name());
  CHECK(children == std::vector<std::string>{"norm1:BatchNorm", "conv1:Conv1d", "film:FiLM",
                                             "norm2:BatchNorm", "conv2:Conv1d", "bypass:Conv1d"});
  // norm1 2*2, conv1 2*3*3+3, film 4*6+6, norm2 2*3, conv2 3*3*3+3, bypass 2*3*3+3
  CHECK(changing.parameter_count() == 4 + 21 + 30 + 6 + 30 + 21);
  // conv3x3 3*3*9+3 = 84 twice, norms 6 + 6, film 30
  CHECK(same.parameter_count() == 6 + 84 + 30 + 6 + 84);

  SECTION("1-D, channels change, batch norm") {
    Variable x = random_input({2, 2, 5}, rng);
    Variable temb = random_input({2, 4}, rng);
    CHECK(changing.forward(x, temb).shape() == Shape{2, 3, 5});
    check_passed(gradcheck_module(changing, {x, temb},
                                  [&](const auto& v) { return changing.forward(v[0], v[1]); }));
  }
  SECTION("2-D, identity bypass, group norm") {
    ResBlock grouped({.in_channels = 4,
                      .out_channels = 4,
                      .time_dim = 3,
                      .spatial_dims = 2,
                      .norm = {NormKind::group, 2}},
                     rng);
    CHECK(grouped.named_children()[0].second->type_name() == "GroupNorm");
    Variable x = random_input({2, 4, 3, 3}, rng);
    Variable temb = random_input({2, 3}, rng);
    check_passed(gradcheck_module(grouped, {x, temb},
                                  [&](const auto& v) { return grouped.forward(v[0], v[1]); }));
  }
}

TEST_CASE("SelfAttention: residual shape, gradcheck", "[layers]") {
  Rng rng(10);
  SelfAttention attention(4, {NormKind::group, 2}, rng);
  Variable x = random_input({2, 4, 3}, rng);
  CHECK(attention(x).shape() == x.shape());
  check_passed(gradcheck_module(attention, {x}, [&](const auto& v) { return attention(v[0]); }));
  CHECK_THROWS_AS(attention(random_input({2, 4}, rng)), std::invalid_argument);
}
