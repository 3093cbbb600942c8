#include "fuzz/targets.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "datasets/gmm.hpp"
#include "datasets/idx.hpp"
#include "fuzz/fixtures.hpp"
#include "nn/checkpoint.hpp"
#include "trainers/dpm_training.hpp"

namespace dpm::fuzz {
namespace {

void check(bool condition, const std::string& what) {
  if (!condition) throw std::logic_error("fuzz invariant: " + what);
}

std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// For the parsers that only take a path: the input goes to a per-process file, in /dev/shm when
// there is one so that a run does no disk I/O. Removed at exit.
class InputFile {
 public:
  explicit InputFile(const std::string& name) {
    std::filesystem::path dir = std::filesystem::is_directory("/dev/shm")
                                    ? std::filesystem::path("/dev/shm")
                                    : std::filesystem::temp_directory_path();
    path_ = (dir / ("dpm_fuzz_" + name + "_" + std::to_string(::getpid()))).string();
  }
  ~InputFile() { std::remove(path_.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& write(const uint8_t* data, size_t size) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    check(f != nullptr, "cannot create " + path_);
    bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
    ok = std::fclose(f) == 0 && ok;
    check(ok, "cannot write " + path_);
    return path_;
  }

 private:
  std::string path_;
};

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  // An empty tensor may have no storage: memcmp on a null pointer is undefined even for size 0.
  return ca.numel() == 0 ||
         std::memcmp(ca.data(), cb.data(), static_cast<size_t>(ca.numel()) * sizeof(float)) == 0;
}

// The bytes of every parameter and buffer: compared as bytes, since a loaded file may hold NaNs.
std::vector<std::string> snapshot(const nn::Module& module) {
  std::vector<std::string> bytes;
  for (const auto& [name, tensor] : module.state_dict()) {
    Tensor dense = tensor.contiguous();
    bytes.emplace_back(reinterpret_cast<const char*>(dense.data()),
                       static_cast<size_t>(dense.numel()) * sizeof(float));
  }
  return bytes;
}

}  // namespace

void safetensors(const uint8_t* data, size_t size) {
  SafeTensors file;
  try {
    file = read_safetensors_from_memory(as_text(data, size), "fuzz input");
  } catch (const SafetensorsError&) {
    return;
  }
  static InputFile copy("safetensors");
  write_safetensors(copy.path(), file.tensors, file.metadata);
  SafeTensors again = read_safetensors(copy.path());
  check(again.metadata == file.metadata, "metadata changed in a write/read round trip");
  check(again.tensors.size() == file.tensors.size(), "tensor count changed in a round trip");
  for (size_t i = 0; i < file.tensors.size(); ++i)
    check(again.tensors[i].first == file.tensors[i].first &&
              same_bytes(again.tensors[i].second, file.tensors[i].second),
          "tensor '" + file.tensors[i].first + "' changed in a write/read round trip");
}

void checkpoint(const uint8_t* data, size_t size) {
  static std::shared_ptr<nn::Sequential> model = make_small_model();
  SafeTensors file;
  try {
    file = read_safetensors_from_memory(as_text(data, size), "fuzz input");
  } catch (const SafetensorsError&) {
    return;
  }
  std::vector<std::string> before = snapshot(*model);
  try {
    nn::load_state(*model, file);
  } catch (const std::runtime_error&) {
    check(snapshot(*model) == before, "a rejected checkpoint changed the model");
    return;
  }
  for (const auto& [name, tensor] : model->state_dict())
    check(same_bytes(tensor, file.get(name)), "tensor '" + name + "' was not loaded as stored");
}

void resume(const uint8_t* data, size_t size) {
  static TinyTrainer tiny = make_tiny_trainer();
  static InputFile input("resume");
  try {
    tiny.trainer->resume(input.write(data, size));
  } catch (const std::runtime_error&) {
    return;
  }
  check(tiny.trainer->step() >= 0 && tiny.trainer->epoch() >= 0,
        "an accepted resume file set a negative step or epoch");
}

void idx(const uint8_t* data, size_t size) {
  static InputFile input("idx");
  const std::string& path = input.write(data, size);
  datasets::IdxArray array;
  try {
    array = datasets::read_idx(path);
  } catch (const std::runtime_error&) {
    return;
  }
  int64_t numel = 1;
  for (int64_t d : array.dims) numel *= d;
  check(static_cast<int64_t>(array.data.size()) == numel, "data size differs from the dims");
  if (array.dims.size() == 3) {
    Tensor images = datasets::read_idx_images(path);
    check(images.numel() == numel, "read_idx_images lost elements");
  } else if (array.dims.size() == 1) {
    check(static_cast<int64_t>(datasets::read_idx_labels(path).size()) == numel,
          "read_idx_labels lost elements");
  }
}

void gmm(const uint8_t* data, size_t size) {
  static InputFile input("gmm");
  try {
    datasets::load_gmm(input.write(data, size));
  } catch (const std::runtime_error&) {  // includes SafetensorsError
  } catch (const std::invalid_argument&) {
  } catch (const std::out_of_range&) {  // a tensor is missing
  }
}

void config(const uint8_t* data, size_t size) {
  nlohmann::json json = nlohmann::json::parse(as_text(data, size), nullptr, false);
  if (json.is_discarded()) return;
  train::DpmTrainingConfig parsed;
  try {
    parsed = train::DpmTrainingConfig::from_json(json);
  } catch (const std::invalid_argument&) {
    return;
  }
  nlohmann::json written = parsed.to_json();
  check(train::DpmTrainingConfig::from_json(written).to_json() == written,
        "config changed in a to_json/from_json round trip: " + written.dump());
}

const std::vector<NamedTarget>& all_targets() {
  static const std::vector<NamedTarget> targets = {{"safetensors", safetensors},
                                                   {"checkpoint", checkpoint},
                                                   {"resume", resume},
                                                   {"idx", idx},
                                                   {"gmm", gmm},
                                                   {"config", config}};
  return targets;
}

}  // namespace dpm::fuzz
