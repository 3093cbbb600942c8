#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/rng.hpp"
#include "nn/arena.hpp"
#include "nn/batchnorm.hpp"
#include "nn/mlp.hpp"
#include "nn/noise_model.hpp"
#include "nn/summary.hpp"
#include "nn/unet.hpp"

using namespace dpm;
using namespace dpm::nn;

namespace {

std::vector<std::string> parameter_names(const Module& m) {
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters()) names.push_back(p.name);
  return names;
}

// Every parameter value of m, flattened in registration order.
std::vector<float> parameter_values(const Module& m) {
  std::vector<float> values;
  for (const auto& p : m.named_parameters()) {
    std::vector<float> v = p.variable.data().to_vector();
    values.insert(values.end(), v.begin(), v.end());
  }
  return values;
}

UNetOptions small_unet_1d() {
  UNetOptions o = UNetOptions::paper_1d();
  o.base_channels = 8;
  o.channel_multipliers = {1, 2};
  return o;
}

}  // namespace

TEST_CASE("parameter counts match the paper (docs/protocol.md, The U-Net)", "[models]") {
  Rng rng(0);
  CHECK(UNet(UNetOptions::paper_1d(), rng).parameter_count() == 1494529);
  CHECK(UNet(UNetOptions::paper_2d(), rng).parameter_count() == 1061441);
  CHECK(ResidualMLP(ResidualMLPOptions{}, rng).parameter_count() == 2496064);
  // FiLM conditioning adds one Linear(512 -> 1024) per block: 4 x 525,312.
  CHECK(ResidualMLP({.conditioning = MlpConditioning::film}, rng).parameter_count() ==
        2496064 + 4 * 525312);
}

TEST_CASE("U-Net structure: bypass convs, channels per level, readable names", "[models]") {
  Rng rng(0);
  UNet unet(UNetOptions::paper_1d(), rng);
  std::vector<std::string> names = parameter_names(unet);
  std::set<std::string> unique(names.begin(), names.end());
  CHECK(unique.size() == names.size());
  for (const char* name :
       {"time_mlp.0.weight", "time_mlp.2.bias", "init_conv.weight", "down.0.blocks.1.conv1.weight",
        "down.1.blocks.0.bypass.weight", "down.3.blocks.1.film.proj.weight", "mid.conv1.weight",
        "mid.norm2.weight", "up.0.blocks.0.bypass.weight", "up.3.blocks.2.bypass.weight",
        "out_norm.weight", "out_norm.bias", "out_conv.weight", "out_conv.bias"})
    CHECK(unique.count(name) == 1);
  // Identity bypass where the channels stay: the first level's blocks, the second block of
  // every level, and the middle block.
  for (const char* name : {"down.0.blocks.0.bypass.weight", "down.0.blocks.1.bypass.weight",
                           "down.2.blocks.1.bypass.weight", "mid.bypass.weight"})
    CHECK(unique.count(name) == 0);
  // Up path deepest first: up.0 works at 128 channels on concat(128, 128 skip), up.3 at 16.
  Shape up0 = unet.arena().slot("up.0.blocks.0.conv1.weight").shape;
  CHECK(up0 == Shape{128, 256, 3});
  CHECK(unet.arena().slot("up.0.blocks.2.conv1.weight").shape == Shape{128, 192, 3});
  CHECK(unet.arena().slot("up.3.blocks.2.conv1.weight").shape == Shape{16, 32, 3});
  CHECK(unet.arena().slot("out_conv.weight").shape == Shape{1, 16, 3});
  // Weight decay only on weights of convs and linears.
  for (const auto& p : unet.named_parameters()) {
    bool is_norm = p.name.find("norm") != std::string::npos;
    bool is_bias = p.name.size() > 5 && p.name.substr(p.name.size() - 5) == ".bias";
    INFO(p.name);
    CHECK(p.weight_decay == !(is_norm || is_bias));
  }
  // Stable: a second build lists the same names in the same order.
  Rng other(99);
  CHECK(parameter_names(UNet(UNetOptions::paper_1d(), other)) == names);
  // BatchNorm buffers: running_mean, running_var, num_batches_tracked per norm.
  std::vector<std::string> buffers;
  for (const auto& [name, t] : unet.named_buffers()) buffers.push_back(name);
  CHECK(buffers[0] == "down.0.blocks.0.norm1.running_mean");
  CHECK(buffers[2] == "down.0.blocks.0.norm1.num_batches_tracked");
}

TEST_CASE("models map inputs to outputs of the same shape", "[models]") {
  Rng rng(1);
  SECTION("U-Net 1-D") {
    UNet unet(UNetOptions::paper_1d(), rng);
    Variable x(randn({2, 1, 64}, rng));
    CHECK(unet.forward(x, {0, 299}).shape() == x.shape());
    CHECK_THROWS_WITH(unet.forward(Variable(randn({2, 1, 60}, rng)), {0, 1}),
                      Catch::Contains("divisible by 8"));
    CHECK_THROWS_AS(unet.forward(x, {0}), std::invalid_argument);
    CHECK_THROWS_AS(unet.forward(Variable(randn({2, 2, 64}, rng)), {0, 1}), std::invalid_argument);
  }
  SECTION("U-Net 2-D") {
    UNet unet(UNetOptions::paper_2d(), rng);
    Variable x(randn({2, 1, 28, 28}, rng));
    CHECK(unet.forward(x, {5, 17}).shape() == x.shape());
  }
  SECTION("U-Net 2-D, 3 data channels") {
    UNetOptions o = UNetOptions::paper_2d();
    o.data_channels = 3;
    UNet unet(o, rng);
    Variable x(randn({2, 3, 8, 8}, rng));
    CHECK(unet.forward(x, {5, 17}).shape() == x.shape());
  }
  SECTION("residual MLP") {
    ResidualMLP mlp(ResidualMLPOptions{}, rng);
    Variable x(randn({2, 64}, rng));
    CHECK(mlp.forward(x, {0, 10}).shape() == x.shape());
    Variable x3(randn({2, 1, 64}, rng));
    CHECK(mlp.forward(x3, {0, 10}).shape() == x3.shape());
    CHECK_THROWS_AS(mlp.forward(Variable(randn({2, 63}, rng)), {0, 1}), std::invalid_argument);
  }
}

TEST_CASE("forward + backward reaches every parameter", "[models]") {
  auto check_all_gradients = [](NoiseModel& model, const Shape& input_shape) {
    Rng rng(2);
    ParameterArena& arena = model.arena();
    arena.zero_grad();
    Variable x(randn(input_shape, rng));
    Variable target(randn(input_shape, rng));
    mse_loss(model.forward(x, {3, 250}), target).backward();
    Tensor& grads = arena.grads();
    for (const ArenaSlot& slot : arena.slots()) {
      bool nonzero = false;
      for (int64_t i = slot.offset; i < slot.offset + slot.numel; ++i)
        nonzero = nonzero || grads.data()[i] != 0.0f;
      INFO(slot.name);
      CHECK(nonzero);
    }
    CHECK_FALSE(arena.first_nonfinite_grad().has_value());
  };
  SECTION("U-Net 1-D") {
    Rng rng(3);
    UNet unet(UNetOptions::paper_1d(), rng);
    check_all_gradients(unet, {2, 1, 64});
  }
  SECTION("U-Net 2-D") {
    Rng rng(3);
    UNet unet(UNetOptions::paper_2d(), rng);
    check_all_gradients(unet, {2, 1, 28, 28});
  }
  SECTION("U-Net 1-D with group norm and attention") {
    UNetOptions o = small_unet_1d();
    o.norm = {NormKind::group, 4};
    o.attention = true;
    Rng rng(3);
    UNet unet(o, rng);
    std::vector<std::string> names = parameter_names(unet);
    CHECK(std::count(names.begin(), names.end(), "mid_attention.qkv.weight") == 1);
    CHECK(unet.named_buffers().empty());
    check_all_gradients(unet, {2, 1, 16});
  }
  SECTION("residual MLP") {
    Rng rng(3);
    ResidualMLP mlp(ResidualMLPOptions{}, rng);
    check_all_gradients(mlp, {2, 64});
  }
  SECTION("residual MLP with FiLM conditioning") {
    Rng rng(3);
    ResidualMLP mlp({.conditioning = MlpConditioning::film}, rng);
    std::vector<std::string> names = parameter_names(mlp);
    CHECK(std::count(names.begin(), names.end(), "blocks.3.film.proj.weight") == 1);
    check_all_gradients(mlp, {2, 64});
  }
}

TEST_CASE("initialisation is reproducible from the seed, bitwise", "[models]") {
  Rng a(7), b(7), c(8);
  UNet first(UNetOptions::paper_1d(), a);
  UNet second(UNetOptions::paper_1d(), b);
  UNet third(UNetOptions::paper_1d(), c);
  std::vector<float> v1 = parameter_values(first), v2 = parameter_values(second);
  REQUIRE(v1.size() == v2.size());
  CHECK(std::memcmp(v1.data(), v2.data(), v1.size() * sizeof(float)) == 0);
  CHECK(parameter_values(third) != v1);
  // The same inputs give the same outputs bitwise.
  Rng data(1);
  Variable x(randn({2, 1, 64}, data));
  CHECK(first.forward(x, {1, 2}).data().to_vector() ==
        second.forward(x, {1, 2}).data().to_vector());
  Rng m1(5), m2(5);
  CHECK(parameter_values(ResidualMLP({}, m1)) == parameter_values(ResidualMLP({}, m2)));
}

TEST_CASE("make_noise_model rebuilds every model from its config", "[models]") {
  Rng rng(11);
  UNetOptions grouped = UNetOptions::paper_2d();
  grouped.norm = {NormKind::group, 4};
  grouped.attention = true;
  grouped.time_hidden_size = 32;
  std::vector<std::shared_ptr<NoiseModel>> models{
      std::make_shared<UNet>(UNetOptions::paper_1d(), rng),
      std::make_shared<UNet>(UNetOptions::paper_2d(), rng), std::make_shared<UNet>(grouped, rng),
      std::make_shared<ResidualMLP>(ResidualMLPOptions{32, 64, 2, 16}, rng),
      std::make_shared<ResidualMLP>(ResidualMLPOptions{32, 64, 2, 16, MlpConditioning::film}, rng)};
  for (const auto& model : models) {
    nlohmann::json config = model->config();
    INFO(config.dump());
    std::shared_ptr<NoiseModel> rebuilt = make_noise_model(config, rng);
    CHECK(rebuilt->type_name() == model->type_name());
    CHECK(rebuilt->parameter_count() == model->parameter_count());
    CHECK(parameter_names(*rebuilt) == parameter_names(*model));
    CHECK(rebuilt->config() == config);
  }
  // Missing fields take the paper's defaults.
  CHECK(make_noise_model({{"arch", "unet1d"}}, rng)->parameter_count() == 1494529);
  CHECK(make_noise_model({{"arch", "unet2d"}}, rng)->parameter_count() == 1061441);
  CHECK(make_noise_model({{"arch", "mlp"}}, rng)->parameter_count() == 2496064);
}

TEST_CASE("make_noise_model names the bad field", "[models]") {
  Rng rng(12);
  using nlohmann::json;
  CHECK_THROWS_WITH(make_noise_model(json::array(), rng), Catch::Contains("'arch'"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "resnet"}}, rng),
                    Catch::Contains("'arch'") && Catch::Contains("resnet"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "unet1d"}, {"base_channels", "16"}}, rng),
                    Catch::Contains("'base_channels'"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "unet1d"}, {"base_channels", 0}}, rng),
                    Catch::Contains("'base_channels'"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "unet2d"}, {"channel_multipliers", {1, -2}}}, rng),
                    Catch::Contains("'channel_multipliers'"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "unet1d"}, {"norm", "layer"}}, rng),
                    Catch::Contains("'norm'") && Catch::Contains("layer"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "unet1d"}, {"attention", 1}}, rng),
                    Catch::Contains("'attention'"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "mlp"}, {"conditioning", "scale"}}, rng),
                    Catch::Contains("'conditioning'") && Catch::Contains("film"));
  CHECK_THROWS_WITH(make_noise_model({{"arch", "mlp"}, {"widht", 512}}, rng),
                    Catch::Contains("unknown field 'widht'"));
  CHECK_THROWS_WITH(
      make_noise_model({{"arch", "unet1d"}, {"norm", "group"}, {"norm_groups", 3}}, rng),
      Catch::Contains("unet1d") && Catch::Contains("GroupNorm"));
}

TEST_CASE("summary lists layers with output shapes and totals, changing nothing", "[models]") {
  Rng rng(13);
  UNet unet(UNetOptions::paper_1d(), rng);
  std::vector<float> before;
  for (const auto& [name, t] : unet.named_buffers()) {
    std::vector<float> v = t.to_vector();
    before.insert(before.end(), v.begin(), v.end());
  }
  std::string table = summary(unet, {1, 64});
  INFO(table);
  CHECK_THAT(table, Catch::Contains("Trainable params: 1,494,529"));
  CHECK_THAT(table, Catch::Contains("init_conv"));
  CHECK_THAT(table, Catch::Contains("[1, 16, 64]"));
  CHECK_THAT(table, Catch::Contains("down.3.blocks.1"));  // depth 4 reaches the ResBlocks
  CHECK_THAT(table, Catch::Contains("[1, 128, 8]"));
  CHECK_THAT(table, Catch::Contains("Params size (MB, float32): 5.98"));
  CHECK(unet.is_training());
  std::vector<float> after;
  for (const auto& [name, t] : unet.named_buffers()) {
    std::vector<float> v = t.to_vector();
    after.insert(after.end(), v.begin(), v.end());
  }
  CHECK(after == before);

  std::string shallow = summary(unet, {1, 64}, 1);
  CHECK_THAT(shallow, !Catch::Contains("down.0"));
  CHECK_THAT(shallow, Catch::Contains("Trainable params: 1,494,529"));

  Rng mlp_rng(1);
  ResidualMLP mlp({}, mlp_rng);
  CHECK_THAT(summary(mlp, {64}), Catch::Contains("Trainable params: 2,496,064"));
  BatchNorm bn(3);
  CHECK_THAT(summary(bn, {3, 5}), Catch::Contains("Buffer elements: 7"));
  CHECK_THROWS_AS(summary(unet, {1, 60}), std::invalid_argument);
}
