#include "datasets/data_files.hpp"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "autograd/io/safetensors.hpp"

namespace dpm::datasets {
namespace {

std::string join(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

nlohmann::json parse_metadata(const SafeTensors& file, const char* key) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end())
    throw std::runtime_error(file.source + ": no '" + key + "' metadata (not written by dpmlab?)");
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(file.source + ": metadata '" + key +
                             "' is not valid JSON: " + e.what());
  }
}

}  // namespace

nlohmann::json normalization_to_json(const datasets::Normalization& normalization) {
  return {{"mean", normalization.mean}, {"scale", normalization.scale}};
}

datasets::Normalization normalization_from_json(const nlohmann::json& json,
                                                const std::string& context) {
  datasets::Normalization normalization;
  try {
    normalization.mean = json.at("mean").get<std::vector<double>>();
    normalization.scale = json.at("scale").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(context + ": bad normalisation entry: " + e.what());
  }
  if (normalization.mean.empty() || !(normalization.scale > 0))
    throw std::runtime_error(context + ": bad normalisation entry (empty mean or scale <= 0)");
  return normalization;
}

Tensor denormalize(const Tensor& x, const datasets::Normalization& normalization) {
  const int64_t dim = static_cast<int64_t>(normalization.mean.size());
  if (x.ndim() < 1 || x.size(0) < 1 || x.numel() / x.size(0) != dim)
    throw std::invalid_argument("denormalize: samples of shape " + x.shape().str() +
                                " do not have the normalisation's " + std::to_string(dim) +
                                " values per sample");
  Tensor out = x.contiguous().clone();
  float* v = out.data();
  for (int64_t i = 0; i < out.numel(); ++i)
    v[i] = static_cast<float>(v[i] * normalization.scale + normalization.mean[i % dim]);
  return out;
}

nlohmann::json shape_to_json(const Shape& shape) {
  return shape.vec();
}

Shape shape_from_json(const nlohmann::json& json, const std::string& context) {
  try {
    std::vector<int64_t> dims = json.get<std::vector<int64_t>>();
    if (dims.empty()) throw std::runtime_error("empty");
    for (int64_t d : dims)
      if (d < 1) throw std::runtime_error("non-positive extent");
    return Shape(dims);
  } catch (const std::exception& e) {
    throw std::runtime_error(context + ": bad sample shape " + json.dump() + ": " + e.what());
  }
}

GmmDataset sample_gmm_dataset(const datasets::Gmm& gmm, const SplitCounts& counts,
                              const Shape& sample_shape, const Rng& rng) {
  Rng train_rng = rng.split(0), val_rng = rng.split(1), test_rng = rng.split(2);
  Tensor train = gmm.sample(counts.train, train_rng);
  Tensor val = gmm.sample(counts.val, val_rng);
  Tensor test = gmm.sample(counts.test, test_rng);
  GmmDataset data;
  data.normalization = datasets::Normalization::fit(train);
  data.gmm = data.normalization.apply(gmm);
  data.train = data.normalization.apply(train);
  data.val = data.normalization.apply(val);
  data.test = data.normalization.apply(test);
  data.sample_shape = sample_shape;
  return data;
}

void write_gmm_dataset(const std::string& dir, GmmDataset& data, const nlohmann::json& config) {
  std::filesystem::create_directories(dir);
  datasets::save_gmm(data.gmm, join(dir, kGmmFileName));
  nlohmann::json info = {
      {"description",
       "samples of the GMM in gmm.safetensors, normalised to zero mean and unit average power per "
       "entry with the mean and scale fitted on train: stored = (raw - mean) / scale"},
      {"tensors",
       {{"train", "training samples [n, D]"},
        {"val", "validation samples [n, D]"},
        {"test", "test samples [n, D]"}}},
      {"sample_shape", shape_to_json(data.sample_shape)},
      {"normalization", normalization_to_json(data.normalization)},
      {"config", config}};
  data.path = join(dir, kDataFileName);
  write_safetensors(data.path, {{"train", data.train}, {"val", data.val}, {"test", data.test}},
                    {{kDatasetMetadataKey, info.dump()}});
}

bool reusable_gmm_dataset(const std::string& dir, const nlohmann::json& config) {
  const std::string data_path = join(dir, kDataFileName);
  if (!std::filesystem::exists(join(dir, kGmmFileName)) || !std::filesystem::exists(data_path))
    return false;
  try {
    return parse_metadata(read_safetensors(data_path), kDatasetMetadataKey)
               .value("config", nlohmann::json()) == config;
  } catch (const std::runtime_error&) {
    return false;  // unreadable or foreign: made anew
  }
}

GmmDataset read_gmm_dataset(const std::string& dir) {
  GmmDataset data;
  data.path = join(dir, kDataFileName);
  if (!std::filesystem::exists(data.path))
    throw std::runtime_error("no " + std::string(kDataFileName) + " in '" + dir +
                             "' (make one with `dpmlab gmm make --out " + dir + "`)");
  SafeTensors file = read_safetensors(data.path);
  nlohmann::json info = parse_metadata(file, kDatasetMetadataKey);
  try {
    data.train = file.get("train");
    data.val = file.get("val");
    data.test = file.get("test");
  } catch (const std::out_of_range& e) {
    throw std::runtime_error(e.what());
  }
  data.normalization =
      normalization_from_json(info.value("normalization", nlohmann::json()), data.path);
  data.sample_shape = shape_from_json(info.value("sample_shape", nlohmann::json()), data.path);
  for (const Tensor* t : {&data.train, &data.val, &data.test})
    if (t->ndim() != 2 || t->size(1) != data.sample_shape.numel())
      throw std::runtime_error(data.path + ": tensor of shape " + t->shape().str() +
                               " does not hold samples of shape " + data.sample_shape.str());
  return data;
}

Tensor read_tensor_spec(const std::string& spec, const std::string& default_tensor) {
  std::string path = spec, name;
  const size_t colon = spec.rfind(':');
  if (colon != std::string::npos && spec.find('/', colon) == std::string::npos) {
    path = spec.substr(0, colon);
    name = spec.substr(colon + 1);
  }
  SafeTensors file = read_safetensors(path);
  if (name.empty()) name = file.tensors.size() == 1 ? file.tensors[0].first : default_tensor;
  for (const auto& [tensor_name, tensor] : file.tensors)
    if (tensor_name == name) return tensor;
  std::string names;
  for (const auto& entry : file.tensors) names += (names.empty() ? "" : ", ") + entry.first;
  throw std::runtime_error(path + ": no tensor '" + name + "' (it holds: " + names +
                           "); name one as FILE:TENSOR");
}

TrainingData training_data(const std::map<std::string, std::string>& metadata,
                           const std::string& path) {
  TrainingData data;
  auto it = metadata.find(kTrainingDataMetadataKey);
  if (it == metadata.end()) return data;
  try {
    const nlohmann::json json = nlohmann::json::parse(it->second);
    data.source = json.value("source", "");
    if (json.contains("model_shape"))
      data.model_shape = shape_from_json(json.at("model_shape"), path);
    if (json.contains("sample_shape"))
      data.sample_shape = shape_from_json(json.at("sample_shape"), path);
    if (json.contains("normalization"))
      data.normalization = normalization_from_json(json.at("normalization"), path);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": metadata '" + kTrainingDataMetadataKey +
                             "' is not valid: " + e.what());
  }
  return data;
}

Shape model_input_shape(const nlohmann::json& model_config, const Shape& shape) {
  const std::string arch = model_config.value("arch", "");
  const int64_t numel = shape.numel();
  if (arch == "mlp" || arch == "two_layer") return Shape{numel};
  const int64_t channels = model_config.value("data_channels", int64_t{1});
  if (numel % channels != 0)
    throw std::invalid_argument("samples of shape " + shape.str() + " do not split into " +
                                std::to_string(channels) + " channels");
  if (arch == "unet1d") return Shape{channels, numel / channels};
  if (shape.ndim() == 3) return shape;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(numel / channels)));
  if (side * side != numel / channels)
    throw std::invalid_argument("a " + arch + " needs [C, H, W] samples; cannot tell H and W of " +
                                shape.str() + " (give --data with image-shaped samples)");
  return Shape{channels, side, side};
}

Tensor flatten_rows(const Tensor& x) {
  if (x.ndim() < 1 || x.size(0) < 1)
    throw std::invalid_argument("expected data [n, ...] with n >= 1, got " + x.shape().str());
  return x.reshape({x.size(0), x.numel() / x.size(0)});
}

Tensor with_sample_shape(const Tensor& x, const Shape& sample_shape) {
  std::vector<int64_t> dims = sample_shape.vec();
  dims.insert(dims.begin(), x.size(0));
  return x.reshape(Shape(dims));
}

}  // namespace dpm::datasets
