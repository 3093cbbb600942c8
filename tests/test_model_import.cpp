// dpmlab model import's library side (train::import_state_dict): PyTorch-style state_dicts (int64
// num_batches_tracked) of a small U-Net imported into checkpoints that load_dpm_checkpoint reads,
// and hostile input (a wrong name, a wrong shape, a truncated file, an int64 beyond float32).
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "diffusion/checkpoint.hpp"
#include "nn/checkpoint.hpp"
#include "nn/noise_model.hpp"
#include "tests/temp_dir.hpp"
#include "trainers/dpm_training.hpp"
#include "trainers/model_import.hpp"

using namespace dpm;
using dpm::testing::TempDir;

namespace {

// A U-Net small enough to build in microseconds, with BatchNorm buffers.
const nlohmann::json kModelConfig = {{"arch", "unet1d"},          {"base_channels", 4},
                                     {"channel_multipliers", {1, 2}}, {"blocks_per_level", 1},
                                     {"time_embedding_size", 4},   {"time_hidden_size", 8}};
const diffusion::Schedule kSchedule = diffusion::Schedule::cosine(50);

diffusion::ObjectiveOptions v_objective() {
  diffusion::ObjectiveOptions objective;
  objective.target = diffusion::PredictionTarget::v;
  return objective;
}

struct StoredTensor {
  std::string name;
  Tensor value;
};

// The model's parameters and buffers, drawn at random (BatchNorm step counts set to 7).
std::vector<StoredTensor> twin_state(uint64_t seed) {
  Rng rng(seed);
  std::vector<StoredTensor> state;
  for (auto& [name, tensor] : nn::make_noise_model(kModelConfig, rng)->state_dict()) {
    const bool counter = name.ends_with("num_batches_tracked");
    state.push_back({name, counter ? Tensor::scalar(7) : randn(tensor.shape(), rng)});
  }
  return state;
}

// What safetensors.torch.save_file writes for the state: float32 tensors, and the BatchNorm step
// counters as int64 (with `counter_value` in them).
std::string torch_file_bytes(const std::vector<StoredTensor>& state, int64_t counter_value = 7) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, value] : state) {
    const bool counter = name.ends_with("num_batches_tracked");
    std::string raw;
    if (counter) {
      raw.resize(sizeof(int64_t));
      std::memcpy(raw.data(), &counter_value, sizeof(int64_t));
    } else {
      const Tensor dense = value.contiguous();
      raw.assign(reinterpret_cast<const char*>(dense.data()), dense.numel() * sizeof(float));
    }
    header[name] = {{"dtype", counter ? "I64" : "F32"},
                    {"shape", value.shape().vec()},
                    {"data_offsets", {data.size(), data.size() + raw.size()}}};
    data += raw;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string length(8, '\0');
  for (size_t i = 0; i < 8; ++i) length[i] = static_cast<char>(uint64_t{text.size()} >> (8 * i));
  return length + text + data;
}

std::string write_file(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.file("twin.safetensors");
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string import_error(const std::string& path) {
  try {
    train::import_state_dict(path, kModelConfig, kSchedule, v_objective());
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("import_state_dict loads a torch-style state_dict into a checkpoint that loads back",
          "[import]") {
  TempDir dir;
  const std::vector<StoredTensor> state = twin_state(1);
  const std::string path = write_file(dir, torch_file_bytes(state));

  const diffusion::DpmCheckpoint imported =
      train::import_state_dict(path, kModelConfig, kSchedule, v_objective());
  const std::string out = dir.file("imported.safetensors");
  diffusion::save_dpm_checkpoint(out, imported);

  const diffusion::DpmCheckpoint loaded = diffusion::load_dpm_checkpoint(out);
  CHECK(loaded.schedule.to_json() == kSchedule.to_json());
  CHECK(loaded.objective.target == diffusion::PredictionTarget::v);
  CHECK(loaded.model->config() == imported.model->config());
  const auto tensors = loaded.model->state_dict();
  REQUIRE(tensors.size() == state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    INFO(state[i].name);
    CHECK(tensors[i].first == state[i].name);
    CHECK(tensors[i].second.to_vector() == state[i].value.to_vector());
  }
}

TEST_CASE("import_state_dict names every mismatch", "[import]") {
  TempDir dir;
  std::vector<StoredTensor> state = twin_state(2);
  const std::string first = state[0].name;

  SECTION("a wrong name: missing in the model's order, then unexpected") {
    state[0].name = "init.weight";
    const std::string message = import_error(write_file(dir, torch_file_bytes(state)));
    CHECK_THAT(message, Catch::Contains("twin.safetensors") &&
                            Catch::Contains("missing tensor '" + first + "'") &&
                            Catch::Contains("unexpected tensor"));
  }
  SECTION("an unexpected name") {
    state.push_back({"extra.weight", Tensor::zeros({2})});
    CHECK_THAT(import_error(write_file(dir, torch_file_bytes(state))),
               Catch::Contains("unexpected tensor 'extra.weight' (shape [2])") &&
                   !Catch::Contains("missing tensor"));
  }
  SECTION("a wrong shape, with both shapes") {
    const Shape expected = state[0].value.shape();
    state[0].value = Tensor::zeros({3});
    CHECK_THAT(import_error(write_file(dir, torch_file_bytes(state))),
               Catch::Contains("tensor '" + first + "' has shape [3], expected " +
                               expected.str()));
  }
}

TEST_CASE("import_state_dict rejects hostile files naming the file", "[import]") {
  TempDir dir;
  const std::string bytes = torch_file_bytes(twin_state(3));

  SECTION("truncated") {
    CHECK_THAT(import_error(write_file(dir, bytes.substr(0, bytes.size() - 5))),
               Catch::Contains("twin.safetensors") && Catch::Contains("(file truncated?)"));
  }
  SECTION("an int64 that float32 cannot hold") {
    CHECK_THAT(import_error(write_file(dir, torch_file_bytes(twin_state(3), (1 << 24) + 1))),
               Catch::Contains("num_batches_tracked") && Catch::Contains("16777217") &&
                   Catch::Contains("beyond 2^24"));
  }
  SECTION("a model config that builds no model") {
    const std::string path = write_file(dir, bytes);
    CHECK_THROWS_AS(train::import_state_dict(path, {{"arch", "transformer"}}, kSchedule,
                                             v_objective()),
                    std::invalid_argument);
  }
}
