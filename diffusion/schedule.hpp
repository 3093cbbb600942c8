#pragma once
// Noise schedules. Steps t = 1..T; every quantity is computed and stored in double, indexed by t
// with index 0 holding the t = 0 convention (beta 0, alpha 1, abar 1).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpm::diffusion {

enum class ScheduleKind {
  paper_linear,  // Fesl et al.: beta_1 = 1/(1 + 10^4) (SNR_1 = 40 dB) to a T-dependent beta_T
  ddpm_linear,   // Ho et al.: 1e-4 .. 0.02
  cosine,        // Nichol & Dhariwal, s = 0.008, beta clipped at 0.999
};

class Schedule {
 public:
  static Schedule paper_linear(int64_t T);
  static Schedule ddpm_linear(int64_t T, double beta_1 = 1e-4, double beta_T = 0.02);
  static Schedule cosine(int64_t T, double s = 0.008);
  static Schedule make(ScheduleKind kind, int64_t T);
  // {"kind": "paper_linear" | "ddpm_linear" | "cosine", "T": int}; errors name the field.
  static Schedule from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;

  // The paper's beta_T for a given T (docs/protocol.md, Schedules; 0.035 for T not in the table).
  static double paper_beta_T(int64_t T);

  ScheduleKind kind() const { return kind_; }
  int64_t T() const { return T_; }
  double beta(int64_t t) const { return beta_[checked(t)]; }
  double alpha(int64_t t) const { return 1.0 - beta_[checked(t)]; }
  double abar(int64_t t) const { return abar_[checked(t)]; }
  double snr(int64_t t) const;  // abar / (1 - abar); infinite at t = 0
  // q(x_{t-1} | x_t, x_0) = N(coef_x0 x_0 + coef_xt x_t, posterior_variance), t >= 1.
  double posterior_coef_x0(int64_t t) const;
  double posterior_coef_xt(int64_t t) const;
  double posterior_variance(int64_t t) const;  // beta~_t (0 at t = 1)

  // The step whose SNR is nearest to `snr` (linear ratio): compared on the linear scale (the
  // authors' convention) or in dB.
  int64_t nearest_step(double snr, bool compare_in_db = false) const;

 private:
  Schedule(ScheduleKind kind, std::vector<double> beta);
  size_t checked(int64_t t) const;

  ScheduleKind kind_;
  int64_t T_;
  std::vector<double> beta_;  // [T + 1], beta_[0] = 0
  std::vector<double> abar_;  // [T + 1], abar_[0] = 1
};

const char* schedule_kind_name(ScheduleKind kind);
ScheduleKind parse_schedule_kind(const std::string& name);  // throws listing the valid names

}  // namespace dpm::diffusion
