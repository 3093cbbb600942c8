#pragma once
// SpectralTracker: a trainer callback that follows the spectral norm of every Linear and Conv
// layer while the model trains (nn/lipschitz/spectral_scan.hpp). Every `every` steps it advances
// each layer's warm power iteration by a few updates and recomputes the network's AutoLip bound;
// every metrics line then carries the latest scan:
//   "spectral_step": 1200, "sigma": {"in_proj": 3.1, "blocks.0.fc1": 2.7, ...},
//   "lipschitz_bound": 812.5,                            (absent when the model has none)
//   "batchnorm_factor": {...}, "film_factor": {"down.0.blocks.0.film": [min, max], ...}
// and the first such line of a process also "layer_type": {"in_proj": "Linear", ...}, so that a
// report can group the layers by kind.
// The vectors are its resume state, so a resumed run continues warm and bitwise like an
// uninterrupted one (scans happen at the same steps: multiples of `every`).
#include <cstdint>
#include <optional>
#include <string>

#include "nn/lipschitz/spectral_scan.hpp"
#include "nn/module.hpp"
#include "trainers/trainer.hpp"

namespace dpm::train {

struct SpectralTrackerOptions {
  int64_t every = 50;             // steps between scans
  lipschitz::ScanOptions scan{};  // warm: power-iteration updates per layer and scan
  uint64_t seed = 0;              // of the initial vectors
  bool log_factors = true;        // BatchNorm and FiLM factors as well
  bool log_proxy = false;         // "sigma_proxy": the reshaped-kernel sigma(W_mat) of every conv
};

class SpectralTracker : public Callback {
 public:
  SpectralTracker(nn::Module& model, SpectralTrackerOptions options = {});

  std::string name() const override { return "spectral"; }
  void on_step(const StepInfo& info, nlohmann::json& record) override;
  NamedTensors state_dict() const override { return state_.state_dict(); }
  void load_state_dict(const NamedTensors& state) override { state_.load_state_dict(state); }

  // Scans now, as on_step does at multiples of `every`.
  const lipschitz::ScanResult& scan(int64_t step);
  const std::optional<lipschitz::ScanResult>& last_scan() const { return last_; }
  // The latest scan's fields as they go into a metrics line (empty before the first scan).
  nlohmann::json metrics() const;

 private:
  nn::Module& model_;
  SpectralTrackerOptions options_;
  lipschitz::SpectralState state_;
  std::optional<lipschitz::ScanResult> last_;
  int64_t last_step_ = 0;
  bool types_logged_ = false;
};

}  // namespace dpm::train
