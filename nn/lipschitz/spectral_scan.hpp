#pragma once
// Spectral scan: the operator norm of every Linear and Conv layer of a model (power iteration
// with warm vectors kept in a SpectralState), the eval-mode BatchNorm factors, the range over a
// time grid of every FiLM factor, and the AutoLip bound of the whole network (autolip.hpp).
// Layers are found by walking named children and named by their dotted module path.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/state_dict.hpp"
#include "autograd/tensor.hpp"
#include "nn/lipschitz/operator_norm.hpp"
#include "nn/module.hpp"
#include "nn/noise_model.hpp"

namespace dpm::lipschitz {

// The persistent power-iteration vectors, "<key>.u" and "<key>.v" per measured operator (key: the
// layer's name, or "<layer>.proxy" for a conv's reshaped kernel): plain named tensors, so a
// resume file can hold them and tracking continues warm.
class SpectralState {
 public:
  explicit SpectralState(uint64_t seed = 0) : seed_(seed) {}

  struct Vectors {
    Tensor u, v;  // share storage with the state: power_iterate updates them in place
    bool fresh;   // just created (absent, or the operator's shape changed)
  };
  // The stored pair for `key` when its shapes match; otherwise a new one: v random (seeded by
  // the state's seed and the key, so it does not depend on the order of calls), u zeros.
  Vectors vectors(const std::string& key, const Shape& output_shape, const Shape& input_shape);

  NamedTensors state_dict() const;  // sorted by name; shares storage
  // Replaces the whole state by copies of `state` (names as state_dict() gives them); any set of
  // operators is accepted, since a vector absent or of another shape is recreated when measured.
  void load_state_dict(const NamedTensors& state);
  size_t size() const { return tensors_.size(); }

 private:
  uint64_t seed_;
  std::map<std::string, Tensor> tensors_;
};

// `points` step indices spread evenly over [0, num_steps), both ends included.
std::vector<int64_t> uniform_time_grid(int64_t num_steps, int points);

struct ScanOptions {
  PowerIterationOptions warm{.steps = 2};  // for vectors carried over from the last scan
  // For fresh vectors: iterate until sigma settles, so even the first report is converged.
  PowerIterationOptions cold{.steps = 1, .tolerance = 1e-5, .max_steps = 500};
  bool reshaped_kernel_proxy = true;  // also measure sigma(W_mat) of every conv
  // Steps t at which FiLM factors and the bound are evaluated (0-based, as NoiseModel::forward
  // takes them). Default: 16 points over the paper's T = 300.
  std::vector<int64_t> time_grid = uniform_time_grid(300, 16);
};

struct LayerSigma {
  std::string name;   // dotted module path, e.g. "down.0.blocks.1.conv1"
  std::string type;   // the module's type name: Linear, Conv1d, Conv2d
  Shape input_shape;  // the operator's input (one sample): [in], [Ci, L] or [Ci, H, W]
  PowerIterationResult power;
  // Convs: sigma(W_mat) of the reshaped kernel and how it brackets power.sigma.
  std::optional<double> proxy;
  ReshapedKernelBounds proxy_bounds;
};

struct NamedValue {
  std::string name;
  double value = 0;
};

struct FilmRange {
  std::string name;
  double min = 0, max = 0;  // over the time grid
  std::vector<double> by_t;
};

struct ScanResult {
  std::vector<LayerSigma> layers;
  std::vector<NamedValue> batchnorm;  // eval-mode factors
  std::vector<FilmRange> film;
  std::vector<int64_t> time_grid;
  std::vector<double> bound_by_t;  // the AutoLip bound at each grid step; empty: none
  std::optional<double> bound;     // its maximum over the grid
  std::string bound_note;          // what the bound covers, or why there is none

  const LayerSigma& layer(const std::string& name) const;  // throws std::out_of_range
};

// Measures every layer of `model`. Convs are measured at the input size of their last forward
// (Conv::last_input_shape; run record_input_shapes or one training step first). FiLM factors
// need the model's time embedding (NoiseModel::embed_time); without it FiLM layers are skipped
// and the bound notes it. The bound is model.lipschitz_bound over the measured factors
// (autolip.hpp). Runs under NoGradGuard and does not change the model.
ScanResult spectral_scan(nn::Module& model, SpectralState& state, const ScanOptions& options = {});

// One forward of a batch of one zero sample of sample_shape (without the batch dimension) at
// step 0, in eval mode and without a graph, so every conv records its input size. The training
// flag is restored.
void record_input_shapes(nn::NoiseModel& model, const Shape& sample_shape);

}  // namespace dpm::lipschitz
