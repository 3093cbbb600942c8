#include "nn/lipschitz/spectral_scan.hpp"

#include <algorithm>
#include <stdexcept>

#include "autograd/rng.hpp"
#include "nn/batchnorm.hpp"
#include "nn/conv.hpp"
#include "nn/film.hpp"
#include "nn/linear.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/lipschitz/spectral_norm.hpp"

namespace dpm::lipschitz {
namespace {

// FNV-1a: a stable hash (std::hash is not), so a key's initial vector is the same everywhere.
uint64_t stable_hash(const std::string& text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

using NamedModules = std::vector<std::pair<std::string, nn::Module*>>;

// Every submodule below `module` (pre-order, registration order) by dotted name. A
// SpectralNormalized wrapper is one operator: its wrapped layer is not listed apart.
void collect_modules(nn::Module& module, const std::string& prefix, NamedModules& out) {
  for (const auto& [name, child] : module.named_children()) {
    const std::string full = prefix.empty() ? name : prefix + "." + name;
    out.emplace_back(full, child.get());
    if (!dynamic_cast<SpectralNormalized*>(child.get())) collect_modules(*child, full, out);
  }
}

// The time embeddings [G, time_dim] every FiLM sees at the grid's steps, or undefined when the
// model is no NoiseModel with a time embedding.
Tensor time_embeddings(nn::Module& model, const std::vector<int64_t>& grid) {
  auto* network = dynamic_cast<nn::NoiseModel*>(&model);
  if (!network || grid.empty()) return {};
  const Variable embedding = network->embed_time(grid);
  return embedding.defined() ? embedding.data() : Tensor();
}

PowerIterationResult measure(LayerOperator& map, SpectralState& state, const std::string& key,
                             const ScanOptions& options) {
  SpectralState::Vectors vectors = state.vectors(key, map.output_shape(), map.input_shape());
  return power_iterate(map, vectors.u, vectors.v, vectors.fresh ? options.cold : options.warm);
}

LayerSigma measure_layer(const std::string& name, const nn::Module& module, LayerOperator& map,
                         SpectralState& state, const ScanOptions& options) {
  return {
      name, module.type_name(), map.input_shape(), measure(map, state, name, options), std::nullopt,
      {}};
}

}  // namespace

SpectralState::Vectors SpectralState::vectors(const std::string& key, const Shape& output_shape,
                                              const Shape& input_shape) {
  const std::string u_name = key + ".u", v_name = key + ".v";
  auto u = tensors_.find(u_name), v = tensors_.find(v_name);
  if (u != tensors_.end() && v != tensors_.end() && u->second.shape() == output_shape &&
      v->second.shape() == input_shape)
    return {u->second, v->second, false};
  Rng rng(seed_, stable_hash(key));
  Vectors fresh{Tensor::zeros(output_shape), randn(input_shape, rng), true};
  tensors_[u_name] = fresh.u;
  tensors_[v_name] = fresh.v;
  return fresh;
}

NamedTensors SpectralState::state_dict() const {
  return {tensors_.begin(), tensors_.end()};
}

void SpectralState::load_state_dict(const NamedTensors& state) {
  for (const auto& [name, t] : state)
    if (!t.defined())
      throw std::invalid_argument("SpectralState: tensor '" + name + "' is undefined");
  tensors_.clear();
  for (const auto& [name, t] : state) tensors_[name] = t.clone();
}

std::vector<int64_t> uniform_time_grid(int64_t num_steps, int points) {
  if (num_steps < 1 || points < 1)
    throw std::invalid_argument("uniform_time_grid: need num_steps >= 1 and points >= 1, got " +
                                std::to_string(num_steps) + " and " + std::to_string(points));
  std::vector<int64_t> grid;
  for (int i = 0; i < points; ++i) {
    const int64_t t =
        points == 1 ? 0
                    : (static_cast<int64_t>(i) * (num_steps - 1) + (points - 1) / 2) / (points - 1);
    if (grid.empty() || grid.back() != t) grid.push_back(t);
  }
  return grid;
}

const LayerSigma& ScanResult::layer(const std::string& name) const {
  for (const LayerSigma& l : layers)
    if (l.name == name) return l;
  throw std::out_of_range("ScanResult: no layer named '" + name + "'");
}

ScanResult spectral_scan(nn::Module& model, SpectralState& state, const ScanOptions& options) {
  NoGradGuard no_grad;
  NamedModules modules;
  collect_modules(model, "", modules);
  ScanResult result;
  result.time_grid = options.time_grid;
  const Tensor temb = time_embeddings(model, options.time_grid);
  LayerFactors factors;
  factors.grid_size = std::max<size_t>(1, options.time_grid.size());
  bool film_skipped = false;

  auto add_layer = [&](const nn::Module* module, LayerSigma layer) {
    factors.sigma[module] = layer.power.sigma;
    result.layers.push_back(std::move(layer));
  };

  for (const auto& [name, module] : modules) {
    factors.names[module] = name;
    if (auto* normalized = dynamic_cast<SpectralNormalized*>(module)) {
      add_layer(module, measure_layer(name, *module, *normalized->rescaled_map(), state, options));
    } else if (auto* linear = dynamic_cast<nn::Linear*>(module)) {
      DenseMap map(linear->weight().data());
      add_layer(module, measure_layer(name, *module, map, state, options));
    } else if (auto* conv = dynamic_cast<nn::Conv*>(module)) {
      const ConvGeometry geometry = conv_geometry(*conv, conv->last_input_shape());
      ConvMap map(conv->weight().data(), geometry);
      LayerSigma layer = measure_layer(name, *module, map, state, options);
      if (options.reshaped_kernel_proxy) {
        DenseMap reshaped(conv->weight().data());
        layer.proxy = measure(reshaped, state, name + ".proxy", options).sigma;
        layer.proxy_bounds = reshaped_kernel_bounds(geometry);
      }
      add_layer(module, std::move(layer));
    } else if (auto* batchnorm = dynamic_cast<nn::BatchNorm*>(module)) {
      result.batchnorm.push_back({name, batchnorm_eval_lipschitz(*batchnorm)});
      factors.batchnorm[module] = result.batchnorm.back().value;
    } else if (auto* film = dynamic_cast<nn::FiLM*>(module)) {
      if (!temb.defined()) {
        film_skipped = true;
        continue;
      }
      FilmRange range{name, 0, 0, film_lipschitz(*film, temb)};
      range.min = *std::min_element(range.by_t.begin(), range.by_t.end());
      range.max = *std::max_element(range.by_t.begin(), range.by_t.end());
      factors.film[module] = range.by_t;
      result.film.push_back(std::move(range));
    }
  }

  if (film_skipped) {
    result.bound_note =
        "no bound: FiLM factors need the model's time embedding (NoiseModel::embed_time) and a "
        "time grid";
    return result;
  }
  AutoLipBound bound = autolip_bound(model, factors);
  result.bound_by_t = std::move(bound.by_t);
  result.bound_note = std::move(bound.note);
  if (!result.bound_by_t.empty())
    result.bound = *std::max_element(result.bound_by_t.begin(), result.bound_by_t.end());
  return result;
}

void record_input_shapes(nn::NoiseModel& model, const Shape& sample_shape) {
  std::vector<int64_t> dims{1};
  for (int64_t d : sample_shape.vec()) dims.push_back(d);
  // Restores the training flag however forward exits.
  struct EvalScope {
    nn::Module& model;
    bool was_training;
    ~EvalScope() { model.train(was_training); }
  } eval_scope{model, model.is_training()};
  model.eval();
  NoGradGuard no_grad;
  model.forward(Variable(Tensor::zeros(Shape(dims))), {0});
}

}  // namespace dpm::lipschitz
