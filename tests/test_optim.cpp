#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "nn/arena.hpp"
#include "nn/module.hpp"
#include "nn/optim/adam.hpp"
#include "nn/optim/ema.hpp"
#include "nn/optim/lr_schedule.hpp"
#include "nn/optim/sgd.hpp"

using dpm::NamedTensors;
using dpm::Tensor;
using dpm::Variable;
using dpm::nn::ParameterArena;
namespace optim = dpm::optim;

namespace {

// `layers` pairs of weight{l} [rows, cols] (decayed) and bias{l} [rows] (not decayed), so the
// arena alternates decayed and non-decayed slots. Values: magnitudes in [1, 2) with alternating
// signs, so two optimizer steps of lr 0.1 never bring a value near zero (relative checks stay
// meaningful).
class TestModel : public dpm::nn::Module {
 public:
  TestModel(int64_t rows, int64_t cols, int layers = 1) : Module("TestModel") {
    for (int l = 0; l < layers; ++l) {
      weights.push_back(register_parameter("weight" + std::to_string(l),
                                           pattern({rows, cols}, 0.37f * static_cast<float>(l))));
      biases.push_back(register_parameter("bias" + std::to_string(l),
                                          pattern({rows}, 0.5f + static_cast<float>(l)), false));
    }
  }
  std::vector<Variable> weights, biases;

 private:
  static Tensor pattern(const dpm::Shape& shape, float phase) {
    Tensor t = Tensor::empty(shape);
    for (int64_t i = 0; i < t.numel(); ++i) {
      float magnitude = 1.0f + std::fmod(0.137f * static_cast<float>(i) + phase, 1.0f);
      t.data()[i] = i % 2 == 0 ? magnitude : -magnitude;
    }
    return t;
  }
};

// A different, never-zero gradient for each step index, written straight into the arena.
void fill_grads(ParameterArena& arena, int64_t step) {
  float* g = arena.grads().data();
  for (int64_t i = 0; i < arena.numel(); ++i)
    g[i] = 0.05f + 0.3f * static_cast<float>(std::sin(0.7 * static_cast<double>(i) +
                                                      1.3 * static_cast<double>(step)));
}

std::vector<double> to_double(const Tensor& t) {
  const float* p = t.data();
  return std::vector<double>(p, p + t.numel());
}

// Per element: does the arena's slot holding it get weight decay?
std::vector<bool> decay_mask(const ParameterArena& arena, bool decay_all) {
  std::vector<bool> mask(static_cast<size_t>(arena.numel()));
  for (const auto& slot : arena.slots())
    for (int64_t i = slot.offset; i < slot.offset + slot.numel; ++i)
      mask[static_cast<size_t>(i)] = decay_all || slot.weight_decay;
  return mask;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

// Relative 1e-6; the absolute 1e-7 floor only matters for values below 0.1 (moments of small
// gradients), where float rounding of O(1) operands is already ~1e-8 absolute.
void check_close(const std::vector<double>& expected, const Tensor& actual, const char* what) {
  REQUIRE(actual.numel() == static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO(what << "[" << i << "]");
    CHECK(actual.data()[i] == Approx(expected[i]).epsilon(1e-6).margin(1e-7));
  }
}

Tensor find_state(const NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  FAIL("no state tensor named " << name);
  return {};
}

struct AdamReference {
  std::vector<double> param, exp_avg, exp_avg_sq;
};

// The textbook Adam/AdamW formulas in double (m_hat, v_hat form), one step per gradient set.
AdamReference reference_adam(std::vector<double> param,
                             const std::vector<std::vector<double>>& grads,
                             const std::vector<bool>& decay, const optim::AdamOptions& o,
                             bool decoupled) {
  const auto [b1, b2] = o.betas;
  AdamReference r{param, std::vector<double>(param.size()), std::vector<double>(param.size())};
  for (size_t t = 1; t <= grads.size(); ++t) {
    for (size_t i = 0; i < param.size(); ++i) {
      double g = grads[t - 1][i];
      if (decay[i] && !decoupled) g += o.weight_decay * r.param[i];
      if (decay[i] && decoupled) r.param[i] *= 1 - o.lr * o.weight_decay;
      r.exp_avg[i] = b1 * r.exp_avg[i] + (1 - b1) * g;
      r.exp_avg_sq[i] = b2 * r.exp_avg_sq[i] + (1 - b2) * g * g;
      double m_hat = r.exp_avg[i] / (1 - std::pow(b1, static_cast<double>(t)));
      double v_hat = r.exp_avg_sq[i] / (1 - std::pow(b2, static_cast<double>(t)));
      r.param[i] -= o.lr * m_hat / (std::sqrt(v_hat) + o.eps);
    }
  }
  return r;
}

struct SGDReference {
  std::vector<double> param, momentum_buffer;
};

SGDReference reference_sgd(std::vector<double> param, const std::vector<std::vector<double>>& grads,
                           const std::vector<bool>& decay, const optim::SGDOptions& o) {
  SGDReference r{param, std::vector<double>(param.size())};
  for (size_t t = 1; t <= grads.size(); ++t) {
    for (size_t i = 0; i < param.size(); ++i) {
      double g = grads[t - 1][i] + (decay[i] ? o.weight_decay * r.param[i] : 0.0);
      double& buf = r.momentum_buffer[i];
      buf = t == 1 ? g : o.momentum * buf + (1 - o.dampening) * g;
      double direction = o.nesterov ? g + o.momentum * buf : buf;
      r.param[i] -= o.lr * direction;
    }
  }
  return r;
}

// Runs `steps` steps of `optimizer` on a fresh tiny model with fill_grads; returns the model's
// initial values and the gradients used, in double, for a reference.
struct Run {
  std::vector<double> initial;
  std::vector<std::vector<double>> grads;
};
Run run_steps(TestModel& model, optim::Optimizer& optimizer, int steps) {
  ParameterArena& arena = model.arena();
  Run run{to_double(arena.values()), {}};
  for (int s = 0; s < steps; ++s) {
    fill_grads(arena, s);
    run.grads.push_back(to_double(arena.grads()));
    optimizer.step();
  }
  return run;
}

}  // namespace

TEST_CASE("Adam and AdamW match the formulas computed in double over two steps", "[optim]") {
  const optim::AdamOptions base{.lr = 0.1, .betas = {0.8, 0.95}, .eps = 1e-6, .weight_decay = 0.1};
  for (bool decoupled : {false, true}) {
    for (bool decay_all : {false, true}) {
      DYNAMIC_SECTION((decoupled ? "AdamW" : "Adam") << (decay_all ? ", decay all" : "")) {
        optim::AdamOptions options = base;
        options.decay_all_parameters = decay_all;
        TestModel model(3, 4);
        ParameterArena& arena = model.arena();
        std::unique_ptr<optim::Optimizer> adam;
        if (decoupled)
          adam = std::make_unique<optim::AdamW>(arena, options);
        else
          adam = std::make_unique<optim::Adam>(arena, options);
        Run run = run_steps(model, *adam, 2);
        CHECK(adam->step_count() == 2);
        AdamReference expected = reference_adam(run.initial, run.grads,
                                                decay_mask(arena, decay_all), options, decoupled);
        check_close(expected.param, arena.values(), "param");
        check_close(expected.exp_avg, find_state(adam->state_dict(), "exp_avg"), "exp_avg");
        check_close(expected.exp_avg_sq, find_state(adam->state_dict(), "exp_avg_sq"),
                    "exp_avg_sq");
        // The bias slot is decayed only when asked: compare with the other choice's reference.
        AdamReference flipped = reference_adam(run.initial, run.grads,
                                               decay_mask(arena, !decay_all), options, decoupled);
        const auto& bias = arena.slot("bias0");
        double bias_gap = std::abs(flipped.param[static_cast<size_t>(bias.offset)] -
                                   expected.param[static_cast<size_t>(bias.offset)]);
        CHECK(bias_gap > 1e-4);
      }
    }
  }
}

TEST_CASE("AdamW decays only weight_decay slots, across chunk and slot boundaries", "[optim]") {
  // Zero gradients leave the moments at zero, so the step is exactly param *= 1 - lr * wd on
  // decayed slots and nothing elsewhere; 3 layers of 60000-element weights span many chunks.
  TestModel model(200, 300, 3);
  ParameterArena& arena = model.arena();
  Tensor before = arena.values().clone();
  optim::AdamW adamw(arena, {.lr = 0.05, .weight_decay = 0.2});
  adamw.step();
  const float scale = static_cast<float>(1 - 0.05 * 0.2);
  int64_t mismatches = 0;
  for (const auto& slot : arena.slots())
    for (int64_t i = slot.offset; i < slot.offset + slot.numel; ++i) {
      float expected = slot.weight_decay ? before.data()[i] * scale : before.data()[i];
      mismatches += arena.values().data()[i] != expected;
    }
  CHECK(mismatches == 0);
}

TEST_CASE("SGD with momentum and Nesterov matches the formulas over three steps", "[optim]") {
  const std::vector<optim::SGDOptions> cases{
      {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.05},
      {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.05, .nesterov = true},
      {.lr = 0.1, .momentum = 0.8, .nesterov = true, .decay_all_parameters = true},
      {.lr = 0.2, .weight_decay = 0.05, .decay_all_parameters = true},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    DYNAMIC_SECTION("case " << c) {
      const optim::SGDOptions& options = cases[c];
      TestModel model(3, 4);
      ParameterArena& arena = model.arena();
      optim::SGD sgd(arena, options);
      Run run = run_steps(model, sgd, 3);
      SGDReference expected = reference_sgd(
          run.initial, run.grads, decay_mask(arena, options.decay_all_parameters), options);
      check_close(expected.param, arena.values(), "param");
      if (options.momentum != 0)
        check_close(expected.momentum_buffer, find_state(sgd.state_dict(), "momentum_buffer"),
                    "momentum_buffer");
      else
        CHECK(sgd.state_dict().empty());
    }
  }
}

TEST_CASE("optimizer options are validated", "[optim]") {
  TestModel model(3, 4);
  ParameterArena& arena = model.arena();
  CHECK_THROWS_WITH(optim::Adam(arena, {.lr = -1}), Catch::Contains("Adam: lr"));
  CHECK_THROWS_WITH(optim::AdamW(arena, {.betas = {0.9, 1.0}}),
                    Catch::Contains("AdamW: betas.second must be in [0, 1)"));
  CHECK_THROWS_WITH(optim::Adam(arena, {.eps = -1e-8}), Catch::Contains("eps"));
  CHECK_THROWS_WITH(optim::Adam(arena, {.weight_decay = -0.1}), Catch::Contains("weight_decay"));
  CHECK_THROWS_WITH(optim::SGD(arena, {.nesterov = true}),
                    Catch::Contains("nesterov needs momentum > 0"));
  CHECK_THROWS_WITH(optim::SGD(arena, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    Catch::Contains("dampening == 0"));
  CHECK_THROWS_WITH(optim::SGD(arena, {.momentum = -0.5}), Catch::Contains("SGD: momentum"));
  optim::SGD sgd(arena, {.lr = 0.1});
  sgd.set_lr(0.25);
  CHECK(sgd.lr() == 0.25);
  CHECK_THROWS_WITH(sgd.set_lr(std::nan("")), Catch::Contains("SGD: lr must be finite"));
  CHECK_THROWS_AS(sgd.set_step_count(-1), std::invalid_argument);
}

TEST_CASE("optimizer steps are bitwise identical for any thread count", "[optim]") {
  auto run_with_threads = [](int threads) {
    dpm::set_num_threads(threads);
    TestModel model(300, 400, 2);
    optim::Adam adam(model.arena(), {.lr = 0.01, .weight_decay = 0.01});
    run_steps(model, adam, 3);
    return model.arena().values().clone();
  };
  Tensor one = run_with_threads(1);
  Tensor two = run_with_threads(2);
  dpm::set_num_threads(0);
  CHECK(bitwise_equal(one, two));
}

TEST_CASE("optimizer state round trip: 10 steps == 5 steps, save, fresh load, 5 steps", "[optim]") {
  using Factory = std::function<std::unique_ptr<optim::Optimizer>(ParameterArena&)>;
  const std::vector<std::pair<const char*, Factory>> factories{
      {"Adam",
       [](ParameterArena& a) {
         return std::make_unique<optim::Adam>(a, optim::AdamOptions{.weight_decay = 0.01});
       }},
      {"AdamW",
       [](ParameterArena& a) {
         return std::make_unique<optim::AdamW>(a, optim::AdamOptions{.weight_decay = 0.1});
       }},
      {"SGD nesterov",
       [](ParameterArena& a) {
         return std::make_unique<optim::SGD>(
             a, optim::SGDOptions{.momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
       }},
      {"SGD dampened",
       [](ParameterArena& a) {
         return std::make_unique<optim::SGD>(a,
                                             optim::SGDOptions{.momentum = 0.9, .dampening = 0.3});
       }},
  };
  const optim::LrSchedule schedule =
      optim::make_lr_schedule({.kind = optim::LrScheduleKind::warmup_cosine,
                               .base_lr = 0.05,
                               .warmup_steps = 3,
                               .total_steps = 10,
                               .min_lr = 0.001});
  // One training step as a trainer does it: schedule, step, EMA.
  auto train = [&](TestModel& model, optim::Optimizer& opt, optim::Ema& ema, int64_t steps) {
    for (int64_t s = 0; s < steps; ++s) {
      fill_grads(model.arena(), opt.step_count());
      opt.set_lr(schedule(opt.step_count()));
      opt.step();
      ema.update(0.9);
    }
  };

  for (const auto& [name, make] : factories) {
    DYNAMIC_SECTION(name) {
      TestModel straight(20, 30, 2);
      auto straight_opt = make(straight.arena());
      optim::Ema straight_ema(straight.arena(), true);
      train(straight, *straight_opt, straight_ema, 10);

      TestModel first_half(20, 30, 2);
      auto first_opt = make(first_half.arena());
      optim::Ema first_ema(first_half.arena(), true);
      train(first_half, *first_opt, first_ema, 5);
      // What a resume file holds, copied out into fresh tensors.
      Tensor saved_values = first_half.arena().values().clone();
      NamedTensors saved = first_opt->state_dict();
      for (auto& [buffer_name, t] : saved) t = t.clone();
      const int64_t saved_steps = first_opt->step_count();
      NamedTensors saved_ema = first_ema.state_dict();
      for (auto& [buffer_name, t] : saved_ema) t = t.clone();
      int64_t saved_updates = first_ema.update_count();

      TestModel resumed(20, 30, 2);
      resumed.arena().values().copy_(saved_values);
      auto resumed_opt = make(resumed.arena());
      resumed_opt->load_state_dict(saved);
      resumed_opt->set_step_count(saved_steps);
      optim::Ema resumed_ema(resumed.arena(), true);
      resumed_ema.load_state_dict(saved_ema);
      resumed_ema.set_update_count(saved_updates);
      CHECK(resumed_opt->step_count() == 5);
      train(resumed, *resumed_opt, resumed_ema, 5);

      CHECK(bitwise_equal(resumed.arena().values(), straight.arena().values()));
      CHECK(bitwise_equal(resumed_ema.shadow(), straight_ema.shadow()));
      auto straight_state = straight_opt->state_dict();
      auto resumed_state = resumed_opt->state_dict();
      REQUIRE(resumed_state.size() == straight_state.size());
      for (size_t i = 0; i < straight_state.size(); ++i)
        CHECK(bitwise_equal(resumed_state[i].second, straight_state[i].second));

      // Without the optimizer state the continuation differs: the test above is sensitive.
      TestModel stateless(20, 30, 2);
      stateless.arena().values().copy_(saved_values);
      auto stateless_opt = make(stateless.arena());
      stateless_opt->set_step_count(5);
      optim::Ema stateless_ema(stateless.arena());
      train(stateless, *stateless_opt, stateless_ema, 5);
      CHECK_FALSE(bitwise_equal(stateless.arena().values(), straight.arena().values()));
    }
  }
}

TEST_CASE("loading optimizer state validates names and sizes", "[optim]") {
  TestModel model(3, 4);
  optim::AdamW adamw(model.arena(), {});
  Tensor right = Tensor::zeros({15});
  Tensor wrong = Tensor::zeros({12});
  CHECK_THROWS_WITH(adamw.load_state_dict({{"exp_avg", right}, {"exp_avg_sq", wrong}}),
                    Catch::Contains("AdamW: tensor 'exp_avg_sq' has shape [12], expected [15]"));
  CHECK_THROWS_WITH(
      adamw.load_state_dict({{"exp_avg", right}, {"exp_avg_sq", Tensor::full({3, 5}, 2.0f)}}),
      Catch::Contains("tensor 'exp_avg_sq' has shape [3, 5], expected [15]"));
  CHECK_THROWS_WITH(adamw.load_state_dict({{"exp_avg", right}}),
                    Catch::Contains("missing tensor 'exp_avg_sq' (expected shape [15])"));
  CHECK_THROWS_WITH(adamw.load_state_dict({{"exp_avg", right}, {"momentum_buffer", right}}),
                    Catch::Contains("unexpected tensor 'momentum_buffer'") &&
                        Catch::Contains("missing tensor 'exp_avg_sq'"));
  CHECK_THROWS_WITH(adamw.load_state_dict({{"exp_avg", right}, {"exp_avg", right}}),
                    Catch::Contains("tensor 'exp_avg' given twice"));
  // A failed load changes nothing; a good one takes the names in any order.
  CHECK(find_state(adamw.state_dict(), "exp_avg").to_vector() == std::vector<float>(15, 0.0f));
  adamw.load_state_dict(
      {{"exp_avg_sq", Tensor::full({15}, 2.0f)}, {"exp_avg", Tensor::full({15}, 1.0f)}});
  CHECK(find_state(adamw.state_dict(), "exp_avg").to_vector() == std::vector<float>(15, 1.0f));
  CHECK(find_state(adamw.state_dict(), "exp_avg_sq").to_vector() == std::vector<float>(15, 2.0f));
  optim::SGD plain(model.arena(), {});
  CHECK_NOTHROW(plain.load_state_dict({}));
  CHECK_THROWS_WITH(plain.load_state_dict({{"momentum_buffer", right}}),
                    Catch::Contains("unexpected tensor 'momentum_buffer'"));
}

TEST_CASE("ParameterArena: parameters and gradients are views of the flat arena", "[arena]") {
  TestModel model(3, 4);
  ParameterArena& arena = model.arena();
  REQUIRE(arena.numel() == 15);
  const Variable& weight = model.weights[0];
  const Variable& bias = model.biases[0];
  CHECK(weight.data().shares_storage_with(arena.values()));
  CHECK(weight.grad().shares_storage_with(arena.grads()));
  CHECK(arena.slot("bias0").offset == 12);
  CHECK_FALSE(arena.slot("bias0").weight_decay);
  CHECK_THROWS_WITH(arena.slot("nope"), Catch::Contains("'nope'"));

  arena.values().data()[5] = 42.0f;  // weight[1][1]
  CHECK(weight.data().at({1, 1}) == 42.0f);
  model.biases[0].data().at({2}) = -7.0f;
  CHECK(arena.values().data()[14] == -7.0f);
  arena.grads().data()[13] = 3.5f;
  CHECK(bias.grad().at({1}) == 3.5f);
  model.weights[0].grad_buffer().at({2, 3}) = 1.25f;
  CHECK(arena.grads().data()[11] == 1.25f);
  Tensor bias_grad = ParameterArena::view(arena.grads(), arena.slot("bias0"));
  CHECK(bias_grad.shape() == dpm::Shape{3});
  CHECK(bias_grad.at({1}) == 3.5f);

  arena.grads().fill_(1.0f);
  model.zero_grad();
  CHECK(arena.grads().to_vector() == std::vector<float>(15, 0.0f));
  arena.grads().fill_(-2.0f);
  arena.zero_grad();
  CHECK(arena.grads().to_vector() == std::vector<float>(15, 0.0f));
  CHECK(weight.grad().to_vector() == std::vector<float>(12, 0.0f));
}

TEST_CASE("ParameterArena: grad norm, clipping and non-finite detection", "[arena]") {
  TestModel model(30, 40, 2);
  ParameterArena& arena = model.arena();
  dpm::Rng rng(7);
  rng.fill_normal(arena.grads().data(), arena.numel());
  auto reference_norm = [&] {
    double sum = 0;
    for (int64_t i = 0; i < arena.numel(); ++i) sum += std::pow(arena.grads().data()[i], 2);
    return std::sqrt(sum);
  };
  const double norm = reference_norm();
  CHECK(arena.grad_norm() == Approx(norm).epsilon(1e-12));

  SECTION("a large gradient is scaled to max_norm") {
    Tensor before = arena.grads().clone();
    CHECK(arena.clip_grad_norm(2.0) == Approx(norm).epsilon(1e-12));
    CHECK(reference_norm() == Approx(2.0).epsilon(1e-6));
    const float scale = static_cast<float>(2.0 / (norm + 1e-6));
    int64_t mismatches = 0;
    for (int64_t i = 0; i < arena.numel(); ++i)
      mismatches += arena.grads().data()[i] != before.data()[i] * scale;
    CHECK(mismatches == 0);
  }
  SECTION("a small gradient is left alone") {
    Tensor before = arena.grads().clone();
    CHECK(arena.clip_grad_norm(norm * 1.5) == Approx(norm).epsilon(1e-12));
    CHECK(bitwise_equal(arena.grads(), before));
  }
  SECTION("the first non-finite gradient or value is named") {
    CHECK_FALSE(arena.first_nonfinite_grad().has_value());
    CHECK_FALSE(arena.first_nonfinite_value().has_value());
    model.biases[1].grad_buffer().at({4}) = std::nanf("");
    CHECK(arena.first_nonfinite_grad() == std::optional<std::string>("bias1"));
    model.weights[1].grad_buffer().at({0, 3}) = INFINITY;
    CHECK(arena.first_nonfinite_grad() == std::optional<std::string>("weight1"));
    CHECK_FALSE(arena.first_nonfinite_value().has_value());
    model.biases[0].data().at({0}) = -INFINITY;
    CHECK(arena.first_nonfinite_value() == std::optional<std::string>("bias0"));
  }
}

TEST_CASE("learning-rate schedules at known steps", "[lr_schedule]") {
  using optim::LrScheduleKind;
  auto constant = optim::make_lr_schedule({.kind = LrScheduleKind::constant, .base_lr = 0.3});
  CHECK(constant(0) == 0.3);
  CHECK(constant(123456) == 0.3);

  auto step = optim::make_lr_schedule(
      {.kind = LrScheduleKind::step, .base_lr = 0.1, .step_size = 3, .gamma = 0.5});
  CHECK(step(0) == Approx(0.1));
  CHECK(step(2) == Approx(0.1));
  CHECK(step(3) == Approx(0.05));
  CHECK(step(8) == Approx(0.025));
  CHECK(step(9) == Approx(0.0125));

  auto cosine = optim::make_lr_schedule({.kind = LrScheduleKind::warmup_cosine,
                                         .base_lr = 1.0,
                                         .warmup_steps = 4,
                                         .total_steps = 14,
                                         .min_lr = 0.1});
  CHECK(cosine(0) == Approx(0.25));
  CHECK(cosine(1) == Approx(0.5));
  CHECK(cosine(3) == Approx(1.0));
  CHECK(cosine(4) == Approx(1.0));
  CHECK(cosine(9) == Approx(0.55));  // half way: min + (base - min) / 2
  CHECK(cosine(6) == Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.2))));
  CHECK(cosine(14) == Approx(0.1));
  CHECK(cosine(1000) == Approx(0.1));
  auto no_warmup = optim::make_lr_schedule(
      {.kind = LrScheduleKind::warmup_cosine, .base_lr = 2.0, .total_steps = 4});
  CHECK(no_warmup(0) == Approx(2.0));
  CHECK(no_warmup(2) == Approx(1.0));
  CHECK(no_warmup(4) == Approx(0.0).margin(1e-15));

  CHECK(optim::parse_lr_schedule_kind("warmup_cosine") == LrScheduleKind::warmup_cosine);
  CHECK_THROWS_WITH(optim::parse_lr_schedule_kind("linear"), Catch::Contains("'linear'"));
  CHECK_THROWS_WITH(step(-1), Catch::Contains("step must be >= 0, got -1"));
  CHECK_THROWS_WITH(optim::make_lr_schedule({.kind = LrScheduleKind::step, .step_size = 0}),
                    Catch::Contains("LrSchedule(step): step_size must be > 0, got 0"));
  CHECK_THROWS_WITH(optim::make_lr_schedule({.kind = LrScheduleKind::step, .gamma = -1}),
                    Catch::Contains("gamma"));
  CHECK_THROWS_WITH(optim::make_lr_schedule({.base_lr = -0.1}), Catch::Contains("base_lr"));
  CHECK_THROWS_WITH(
      optim::make_lr_schedule(
          {.kind = LrScheduleKind::warmup_cosine, .warmup_steps = 10, .total_steps = 10}),
      Catch::Contains("total_steps must be > warmup_steps"));
  CHECK_THROWS_WITH(optim::make_lr_schedule({.kind = LrScheduleKind::warmup_cosine,
                                             .base_lr = 0.1,
                                             .total_steps = 10,
                                             .min_lr = 0.2}),
                    Catch::Contains("min_lr must be in [0, base_lr]"));
}

TEST_CASE("EMA of the weights matches hand values, swap round-trips bitwise", "[ema]") {
  TestModel model(3, 4);
  ParameterArena& arena = model.arena();
  optim::Ema ema(arena);
  CHECK(bitwise_equal(ema.shadow(), arena.values()));

  std::vector<double> expected = to_double(arena.values());
  const std::vector<double> decays{0.9, 0.5, 0.99};
  for (size_t k = 0; k < decays.size(); ++k) {
    for (int64_t i = 0; i < arena.numel(); ++i)  // the live weights move between updates
      arena.values().data()[i] += 0.1f * static_cast<float>(k + 1) * static_cast<float>(i % 3);
    std::vector<double> live = to_double(arena.values());
    for (size_t i = 0; i < expected.size(); ++i)
      expected[i] = decays[k] * expected[i] + (1 - decays[k]) * live[i];
    ema.update(decays[k]);
  }
  CHECK(ema.update_count() == 3);
  check_close(expected, ema.shadow(), "shadow");

  SECTION("swap exchanges shadow and live weights, and back bitwise") {
    Tensor live = arena.values().clone();
    Tensor shadow = ema.shadow().clone();
    ema.swap();
    CHECK(ema.swapped());
    CHECK(bitwise_equal(arena.values(), shadow));
    CHECK(model.weights[0].data().at({0, 0}) == shadow.data()[0]);
    CHECK_THROWS_WITH(ema.update(0.9), Catch::Contains("swapped"));
    CHECK_THROWS_AS(ema.shadow(), std::logic_error);
    ema.swap();
    CHECK_FALSE(ema.swapped());
    CHECK(bitwise_equal(arena.values(), live));
    CHECK(bitwise_equal(ema.shadow(), shadow));
  }
  SECTION("errors") {
    CHECK_THROWS_WITH(ema.update(1.5), Catch::Contains("decay must be in [0, 1], got 1.5"));
    CHECK_THROWS_WITH(ema.load_state_dict({{"shadow", Tensor::zeros({14})}}),
                      Catch::Contains("tensor 'shadow' has shape [14], expected [15]"));
    CHECK_THROWS_WITH(ema.load_state_dict({}), Catch::Contains("missing tensor 'shadow'"));
    CHECK_THROWS_AS(ema.set_update_count(-1), std::invalid_argument);
  }
}

TEST_CASE("EMA decay warmup: min(decay, (1 + n) / (10 + n))", "[ema]") {
  TestModel model(3, 4);
  ParameterArena& arena = model.arena();
  optim::Ema ema(arena, true);
  CHECK(ema.effective_decay(0.999) == Approx(0.1));
  CHECK(ema.effective_decay(0.05) == Approx(0.05));
  std::vector<double> expected = to_double(arena.values());
  for (int n = 0; n < 3; ++n) {
    arena.values().fill_(static_cast<float>(n + 1));
    double d = std::min(0.999, (1.0 + n) / (10.0 + n));
    CHECK(ema.effective_decay(0.999) == Approx(d));
    for (auto& e : expected) e = d * e + (1 - d) * (n + 1);
    ema.update(0.999);
  }
  check_close(expected, ema.shadow(), "shadow");
  ema.set_update_count(10000);
  CHECK(ema.effective_decay(0.999) == Approx(0.999));
}
