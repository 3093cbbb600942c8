#include "diffusion/schedule.hpp"

#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace dpm::diffusion {
namespace {

std::vector<double> linear_betas(int64_t T, double beta_1, double beta_T) {
  std::vector<double> beta(static_cast<size_t>(T) + 1, 0.0);
  for (int64_t t = 1; t <= T; ++t)
    beta[static_cast<size_t>(t)] =
        T == 1 ? beta_1 : beta_1 + (beta_T - beta_1) * static_cast<double>(t - 1) /
                                       static_cast<double>(T - 1);
  return beta;
}

void require_steps(int64_t T, const char* caller) {
  if (T < 1 || T > 1'000'000)
    throw std::invalid_argument(std::string(caller) + ": T must be in 1..1000000, got " +
                                std::to_string(T));
}

}  // namespace

Schedule::Schedule(ScheduleKind kind, std::vector<double> beta)
    : kind_(kind), T_(static_cast<int64_t>(beta.size()) - 1), beta_(std::move(beta)) {
  abar_.assign(beta_.size(), 1.0);
  for (size_t t = 1; t < beta_.size(); ++t) {
    if (!(beta_[t] > 0 && beta_[t] < 1))
      throw std::invalid_argument("Schedule: beta_" + std::to_string(t) + " = " +
                                  std::to_string(beta_[t]) + " outside (0, 1)");
    abar_[t] = abar_[t - 1] * (1.0 - beta_[t]);
  }
}

double Schedule::paper_beta_T(int64_t T) {
  switch (T) {
    case 5: return 0.95;
    case 10: return 0.7;
    case 50: return 0.2;
    case 100: return 0.1;
    case 300: return 0.035;
    case 500: return 0.02;
    case 1000: return 0.01;
    case 10000: return 0.001;
    default: return 0.035;
  }
}

Schedule Schedule::paper_linear(int64_t T) {
  require_steps(T, "paper_linear");
  return Schedule(ScheduleKind::paper_linear, linear_betas(T, 1.0 / (1.0 + 1e4), paper_beta_T(T)));
}

Schedule Schedule::ddpm_linear(int64_t T, double beta_1, double beta_T) {
  require_steps(T, "ddpm_linear");
  return Schedule(ScheduleKind::ddpm_linear, linear_betas(T, beta_1, beta_T));
}

Schedule Schedule::cosine(int64_t T, double s) {
  require_steps(T, "cosine");
  auto squared_cosine = [&](double t) {
    double c = std::cos((t / static_cast<double>(T) + s) / (1 + s) * std::numbers::pi / 2);
    return c * c;
  };
  std::vector<double> beta(static_cast<size_t>(T) + 1, 0.0);
  for (int64_t t = 1; t <= T; ++t)
    beta[static_cast<size_t>(t)] = std::min(
        1.0 - squared_cosine(static_cast<double>(t)) / squared_cosine(static_cast<double>(t - 1)),
        0.999);
  return Schedule(ScheduleKind::cosine, std::move(beta));
}

Schedule Schedule::make(ScheduleKind kind, int64_t T) {
  switch (kind) {
    case ScheduleKind::paper_linear: return paper_linear(T);
    case ScheduleKind::ddpm_linear: return ddpm_linear(T);
    case ScheduleKind::cosine: return cosine(T);
  }
  throw std::invalid_argument("Schedule::make: unknown kind");
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::paper_linear: return "paper_linear";
    case ScheduleKind::ddpm_linear: return "ddpm_linear";
    case ScheduleKind::cosine: return "cosine";
  }
  return "unknown";
}

ScheduleKind parse_schedule_kind(const std::string& name) {
  for (ScheduleKind k : {ScheduleKind::paper_linear, ScheduleKind::ddpm_linear, ScheduleKind::cosine})
    if (name == schedule_kind_name(k)) return k;
  throw std::invalid_argument("unknown schedule '" + name +
                              "' (expected paper_linear, ddpm_linear or cosine)");
}

Schedule Schedule::from_json(const nlohmann::json& config) {
  if (!config.is_object()) throw std::invalid_argument("schedule config: expected a JSON object");
  for (const auto& [key, value] : config.items())
    if (key != "kind" && key != "T")
      throw std::invalid_argument("schedule config: unknown field '" + key + "'");
  if (!config.contains("kind") || !config["kind"].is_string())
    throw std::invalid_argument("schedule config: field 'kind' must be a string");
  if (!config.contains("T") || !config["T"].is_number_integer())
    throw std::invalid_argument("schedule config: field 'T' must be an integer");
  return make(parse_schedule_kind(config["kind"]), config["T"].get<int64_t>());
}

nlohmann::json Schedule::to_json() const { return {{"kind", schedule_kind_name(kind_)}, {"T", T_}}; }

size_t Schedule::checked(int64_t t) const {
  if (t < 0 || t > T_)
    throw std::out_of_range("Schedule: step " + std::to_string(t) + " outside 0.." +
                            std::to_string(T_));
  return static_cast<size_t>(t);
}

double Schedule::snr(int64_t t) const {
  double a = abar(t);
  return t == 0 ? std::numeric_limits<double>::infinity() : a / (1.0 - a);
}

double Schedule::posterior_coef_x0(int64_t t) const {
  if (t < 1) throw std::out_of_range("Schedule: posterior needs t >= 1");
  return std::sqrt(abar(t - 1)) * beta(t) / (1.0 - abar(t));
}

double Schedule::posterior_coef_xt(int64_t t) const {
  if (t < 1) throw std::out_of_range("Schedule: posterior needs t >= 1");
  return std::sqrt(alpha(t)) * (1.0 - abar(t - 1)) / (1.0 - abar(t));
}

double Schedule::posterior_variance(int64_t t) const {
  if (t < 1) throw std::out_of_range("Schedule: posterior needs t >= 1");
  return beta(t) * (1.0 - abar(t - 1)) / (1.0 - abar(t));
}

int64_t Schedule::nearest_step(double target_snr, bool compare_in_db) const {
  if (!(target_snr > 0) || !std::isfinite(target_snr))
    throw std::invalid_argument("nearest_step: SNR must be positive and finite, got " +
                                std::to_string(target_snr));
  auto distance = [&](int64_t t) {
    return compare_in_db ? std::fabs(10 * std::log10(snr(t)) - 10 * std::log10(target_snr))
                         : std::fabs(snr(t) - target_snr);
  };
  int64_t best = 1;
  for (int64_t t = 2; t <= T_; ++t)
    if (distance(t) < distance(best)) best = t;
  return best;
}

}  // namespace dpm::diffusion
