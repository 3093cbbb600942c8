#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "autograd/rng.hpp"
#include "nn/arena.hpp"
#include "nn/checkpoint.hpp"
#include "tests/temp_dir.hpp"

using dpm::Rng;
using dpm::Shape;
using dpm::Tensor;
using dpm::nn::Module;
namespace fs = std::filesystem;
using dpm::testing::TempDir;

namespace {

Tensor random_tensor(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  rng.fill_normal(t.data(), t.numel());
  return t;
}

// A layer with a parameter pair and a BatchNorm-like buffer.
class TinyBlock : public Module {
 public:
  TinyBlock(int64_t in, int64_t out, Rng& rng) : Module("TinyBlock") {
    weight = register_parameter("weight", random_tensor({out, in}, rng));
    bias = register_parameter("bias", random_tensor({out}, rng), false);
    running_mean = register_buffer("running_mean", random_tensor({out}, rng));
  }
  dpm::Variable weight, bias;
  Tensor running_mean;
};

class TinyNet : public Module {
 public:
  explicit TinyNet(uint64_t seed) : Module("TinyNet") {
    Rng rng(seed);
    scale = register_parameter("scale", random_tensor({}, rng));
    encoder = register_module("encoder", std::make_shared<TinyBlock>(4, 3, rng));
    decoder = register_module("decoder", std::make_shared<TinyBlock>(3, 2, rng));
  }
  dpm::Variable scale;
  std::shared_ptr<TinyBlock> encoder, decoder;
};

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  std::vector<float> va = a.to_vector(), vb = b.to_vector();
  return std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

bool same_state(const Module& a, const Module& b) {
  auto sa = a.state_dict(), sb = b.state_dict();
  if (sa.size() != sb.size()) return false;
  for (size_t i = 0; i < sa.size(); ++i)
    if (sa[i].first != sb[i].first || !bitwise_equal(sa[i].second, sb[i].second)) return false;
  return true;
}

// `source`'s state with `edit` applied, written to `path`.
template <typename Edit>
void write_edited(const std::string& path, const Module& source, Edit edit) {
  auto tensors = source.state_dict();
  edit(tensors);
  dpm::write_safetensors(path, tensors);
}

}  // namespace

TEST_CASE("module state round trips bitwise under dotted names", "[checkpoint]") {
  TempDir dir;
  TinyNet saved(1), loaded(2);
  REQUIRE_FALSE(same_state(saved, loaded));

  std::vector<std::string> names;
  for (const auto& [name, t] : saved.state_dict()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"scale", "encoder.weight", "encoder.bias",
                                          "decoder.weight", "decoder.bias", "encoder.running_mean",
                                          "decoder.running_mean"});

  std::string path = dir.file("net.safetensors");
  dpm::nn::save_state(path, saved, {{"step", "42"}});
  Tensor buffer_handle = loaded.encoder->running_mean;
  dpm::nn::load_state(loaded, path);
  CHECK(same_state(saved, loaded));
  CHECK(bitwise_equal(buffer_handle, saved.encoder->running_mean));  // copied into storage
  CHECK(loaded.scale.data().ndim() == 0);

  dpm::SafeTensors file = dpm::read_safetensors(path);
  CHECK(file.metadata == std::map<std::string, std::string>{{"step", "42"}});
  CHECK_THROWS_WITH(dpm::nn::read_config(file),
                    Catch::Contains(path) && Catch::Contains("dpmlab.config"));
}

TEST_CASE("a noise model is rebuilt from the config in its checkpoint", "[checkpoint]") {
  TempDir dir;
  Rng rng(3);
  nlohmann::json config = {
      {"arch", "mlp"}, {"dim", 3}, {"width", 8}, {"depth", 1}, {"time_embedding_size", 4}};
  auto model = dpm::nn::make_noise_model(config, rng);
  std::string path = dir.file("model.safetensors");
  dpm::nn::save_model(path, *model, {{"epoch", "5"}});

  dpm::SafeTensors file = dpm::read_safetensors(path);
  CHECK(file.metadata.at("epoch") == "5");
  CHECK(file.metadata.at(dpm::nn::kConfigMetadataKey) == model->config().dump());
  CHECK(dpm::nn::read_config(file) == model->config());

  auto rebuilt = dpm::nn::load_model(path);
  REQUIRE(rebuilt);
  CHECK(rebuilt->config() == model->config());
  CHECK(same_state(*rebuilt, *model));

  file.metadata[dpm::nn::kConfigMetadataKey] = "{not json";
  CHECK_THROWS_WITH(dpm::nn::read_config(file),
                    Catch::Contains(path) && Catch::Contains("not valid JSON"));

  std::string unknown = dir.file("unknown.safetensors");
  dpm::write_safetensors(unknown, model->state_dict(),
                         {{dpm::nn::kConfigMetadataKey, R"({"arch":"transformer"})"}});
  CHECK_THROWS_WITH(dpm::nn::load_model(unknown),
                    Catch::Contains(unknown) && Catch::Contains("transformer"));

  std::string plain = dir.file("plain.safetensors");
  dpm::nn::save_state(plain, *model);
  CHECK_THROWS_WITH(dpm::nn::load_model(plain),
                    Catch::Contains(plain) && Catch::Contains("no model config"));
}

TEST_CASE("strict loading names every mismatch and leaves the module untouched", "[checkpoint]") {
  TempDir dir;
  TinyNet source(4);
  std::string path = dir.file("bad.safetensors");
  auto load_error = [&](Module& target) -> std::string {
    try {
      dpm::nn::load_state(target, path);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  };

  SECTION("missing tensor") {
    write_edited(path, source, [](auto& tensors) { tensors.erase(tensors.begin() + 4); });
    TinyNet target(5), untouched(5);
    CHECK_THAT(load_error(target), Catch::Contains(path) &&
                                       Catch::Contains("missing tensor 'decoder.bias'") &&
                                       Catch::Contains("[2]"));
    CHECK(same_state(target, untouched));
  }
  SECTION("unexpected tensor") {
    write_edited(path, source,
                 [](auto& tensors) { tensors.emplace_back("extra.thing", Tensor::ones({7})); });
    TinyNet target(5), untouched(5);
    CHECK_THAT(load_error(target), Catch::Contains(path) &&
                                       Catch::Contains("unexpected tensor 'extra.thing'") &&
                                       Catch::Contains("[7]"));
    CHECK(same_state(target, untouched));
  }
  SECTION("shape mismatch") {
    write_edited(path, source, [](auto& tensors) { tensors[1].second = Tensor::zeros({4, 3}); });
    TinyNet target(5), untouched(5);
    CHECK_THAT(load_error(target), Catch::Contains(path) &&
                                       Catch::Contains("'encoder.weight' has shape [4, 3]") &&
                                       Catch::Contains("expected [3, 4]"));
    CHECK(same_state(target, untouched));
  }
  SECTION("several problems are all listed") {
    write_edited(path, source, [](auto& tensors) {
      tensors[0].first = "renamed_scale";
      tensors[3].second = Tensor::zeros({1});
    });
    TinyNet target(5);
    CHECK_THAT(load_error(target), Catch::Contains("missing tensor 'scale'") &&
                                       Catch::Contains("unexpected tensor 'renamed_scale'") &&
                                       Catch::Contains("'decoder.weight' has shape [1]"));
  }
  SECTION("corrupt file") {
    dpm::nn::save_state(path, source);
    fs::resize_file(path, fs::file_size(path) - 4);
    TinyNet target(5);
    CHECK_THROWS_AS(dpm::nn::load_state(target, path), dpm::SafetensorsError);
  }
}

TEST_CASE("loading after the arena is built writes through the arena views", "[checkpoint]") {
  TempDir dir;
  TinyNet saved(6), loaded(7);
  std::string path = dir.file("net.safetensors");
  dpm::nn::save_state(path, saved);

  dpm::nn::ParameterArena& arena = loaded.arena();
  dpm::nn::load_state(loaded, path);
  CHECK(same_state(saved, loaded));
  for (const auto& p : loaded.named_parameters()) {
    INFO(p.name);
    CHECK(p.variable.data().shares_storage_with(arena.values()));
    CHECK(bitwise_equal(dpm::nn::ParameterArena::view(arena.values(), arena.slot(p.name)),
                        p.variable.data()));
  }
  // The flat block holds exactly the saved parameters, in slot order.
  std::vector<float> expected;
  for (const auto& p : saved.named_parameters())
    for (float v : p.variable.data().to_vector()) expected.push_back(v);
  std::vector<float> flat = arena.values().to_vector();
  REQUIRE(flat.size() == expected.size());
  CHECK(std::memcmp(flat.data(), expected.data(), flat.size() * sizeof(float)) == 0);

  // Saving from an arena-backed module reads the views: the file round trips.
  std::string again = dir.file("again.safetensors");
  dpm::nn::save_state(again, loaded);
  TinyNet third(8);
  dpm::nn::load_state(third, again);
  CHECK(same_state(saved, third));
}
