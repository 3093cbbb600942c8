#pragma once
// The data files dpmlab's commands and experiments share.
// A data set directory (written by `gmm make` and `gmm fit --sample`, read by `gmm cme` and
// `train --data DIR`):
//   DIR/gmm.safetensors   the GMM the data follow, normalised like them (datasets::save_gmm)
//   DIR/data.safetensors  tensors "train", "val", "test" [n, D]; metadata kDatasetMetadataKey
// Checkpoints written by `dpmlab train` describe their data under kTrainingDataMetadataKey, so
// `dpmlab sample` knows the sample shape and how to map samples back to the data's units.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "autograd/shape.hpp"
#include "autograd/tensor.hpp"
#include "datasets/gmm.hpp"

namespace dpm::datasets {

inline constexpr const char* kDatasetMetadataKey = "dpmlab.dataset";
inline constexpr const char* kTrainingDataMetadataKey = "dpmlab.data";
inline constexpr const char* kGmmFileName = "gmm.safetensors";
inline constexpr const char* kDataFileName = "data.safetensors";

// {"mean": [...], "scale": c}: stored = (raw - mean) / scale.
nlohmann::json normalization_to_json(const datasets::Normalization& normalization);
// Throws std::runtime_error naming `context` for anything else.
datasets::Normalization normalization_from_json(const nlohmann::json& json,
                                                const std::string& context);
// raw = stored * scale + mean, on rows [n, D] of any shape [n, ...] (kept).
Tensor denormalize(const Tensor& x, const datasets::Normalization& normalization);

nlohmann::json shape_to_json(const Shape& shape);
Shape shape_from_json(const nlohmann::json& json, const std::string& context);

struct GmmDataset {
  datasets::Gmm gmm;                      // the distribution of the normalised data
  Tensor train, val, test;                // [n, D], normalised
  datasets::Normalization normalization;  // raw -> stored, fitted on train
  Shape sample_shape;                     // one sample as the data know it: [D] or [C, H, W]
  std::string path;                       // data.safetensors, once written or read
};

struct SplitCounts {
  int64_t train = 0, val = 0, test = 0;
};

// Draws train, val and test from `gmm` (a split stream of rng each), fits the normalisation on
// train and applies it to the three and to the GMM (docs/protocol.md, The GMM protocol).
GmmDataset sample_gmm_dataset(const datasets::Gmm& gmm, const SplitCounts& counts,
                              const Shape& sample_shape, const Rng& rng);

// Writes DIR/gmm.safetensors and DIR/data.safetensors; `config` (what made the data) goes into the
// metadata, where reusable_gmm_dataset finds it.
void write_gmm_dataset(const std::string& dir, GmmDataset& data, const nlohmann::json& config);

// True when DIR holds both files and data.safetensors was made with exactly `config`.
bool reusable_gmm_dataset(const std::string& dir, const nlohmann::json& config);

// Reads DIR/data.safetensors (and not the GMM); errors name the file.
GmmDataset read_gmm_dataset(const std::string& dir);

// "FILE.safetensors[:tensor]": the named tensor, or the file's only tensor, or `default_tensor`.
// Errors name the file and list the tensors it holds.
Tensor read_tensor_spec(const std::string& spec, const std::string& default_tensor);

// What `dpmlab train` recorded about a checkpoint's data (kTrainingDataMetadataKey), if anything.
struct TrainingData {
  std::string source;  // the data set directory or name
  std::optional<Shape> model_shape, sample_shape;
  std::optional<datasets::Normalization> normalization;  // raw -> stored, as trained on
};

// From a checkpoint's metadata; errors name `path` (the checkpoint).
TrainingData training_data(const std::map<std::string, std::string>& metadata,
                           const std::string& path);

// The per-sample shape a network (its model config) takes, for samples of `shape` (the data's own,
// or [N]). Throws std::invalid_argument when the samples do not fit the architecture.
Shape model_input_shape(const nlohmann::json& model_config, const Shape& shape);

// x [n, ...] as [n, D].
Tensor flatten_rows(const Tensor& x);
// x [n, ...] as [n, ...sample_shape] (same element count per sample).
Tensor with_sample_shape(const Tensor& x, const Shape& sample_shape);

}  // namespace dpm::datasets
