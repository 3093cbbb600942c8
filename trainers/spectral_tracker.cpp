#include "trainers/spectral_tracker.hpp"

#include <stdexcept>

namespace dpm::train {

SpectralTracker::SpectralTracker(nn::Module& model, SpectralTrackerOptions options)
    : model_(model), options_(std::move(options)), state_(options_.seed) {
  if (options_.every < 1)
    throw std::invalid_argument("SpectralTracker: every must be >= 1, got " +
                                std::to_string(options_.every));
}

const lipschitz::ScanResult& SpectralTracker::scan(int64_t step) {
  last_ = lipschitz::spectral_scan(model_, state_, options_.scan);
  last_step_ = step;
  return *last_;
}

void SpectralTracker::on_step(const StepInfo& info, nlohmann::json& record) {
  if (info.step % options_.every == 0) scan(info.step);
  if (!info.logging || !last_) return;
  record.update(metrics());
  if (types_logged_) return;
  nlohmann::json types = nlohmann::json::object();
  for (const auto& layer : last_->layers) types[layer.name] = layer.type;
  record["layer_type"] = std::move(types);
  types_logged_ = true;
}

nlohmann::json SpectralTracker::metrics() const {
  nlohmann::json out = nlohmann::json::object();
  if (!last_) return out;
  out["spectral_step"] = last_step_;
  nlohmann::json sigma = nlohmann::json::object(), proxy = nlohmann::json::object();
  for (const auto& layer : last_->layers) {
    sigma[layer.name] = layer.power.sigma;
    if (layer.proxy) proxy[layer.name] = *layer.proxy;
  }
  out["sigma"] = std::move(sigma);
  if (options_.log_proxy && !proxy.empty()) out["sigma_proxy"] = std::move(proxy);
  if (last_->bound) out["lipschitz_bound"] = *last_->bound;
  if (options_.log_factors) {
    if (!last_->batchnorm.empty()) {
      nlohmann::json bn = nlohmann::json::object();
      for (const auto& [name, value] : last_->batchnorm) bn[name] = value;
      out["batchnorm_factor"] = std::move(bn);
    }
    if (!last_->film.empty()) {
      nlohmann::json film = nlohmann::json::object();
      for (const auto& range : last_->film) film[range.name] = {range.min, range.max};
      out["film_factor"] = std::move(film);
    }
  }
  return out;
}

}  // namespace dpm::train
