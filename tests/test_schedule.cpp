#include <catch2/catch.hpp>

#include <cmath>

#include "diffusion/schedule.hpp"

using dpm::diffusion::Schedule;
using dpm::diffusion::ScheduleKind;

TEST_CASE("paper-linear schedule: SNR_1 = 40 dB and the beta_T table", "[schedule]") {
  const std::pair<int64_t, double> table[] = {{5, 0.95},   {10, 0.7},    {50, 0.2},
                                              {100, 0.1},  {300, 0.035}, {500, 0.02},
                                              {1000, 0.01}, {10000, 0.001}};
  for (auto [T, beta_T] : table) {
    Schedule s = Schedule::paper_linear(T);
    CHECK(10 * std::log10(s.snr(1)) == Approx(40.0).epsilon(1e-12));
    CHECK(s.beta(T) == Approx(beta_T).epsilon(1e-12));
    double snr_T_db = 10 * std::log10(s.snr(T));
    INFO("T = " << T << ", SNR_T = " << snr_T_db << " dB");
    CHECK(snr_T_db < -20.0);  // each ends near -22..-24 dB
    CHECK(snr_T_db > -26.0);
  }
  CHECK(Schedule::paper_linear(77).beta(77) == Approx(0.035));
  Schedule s = Schedule::paper_linear(300);
  CHECK(s.beta(150) == Approx(1.0 / 10001 + (0.035 - 1.0 / 10001) * 149.0 / 299.0));
}

TEST_CASE("derived quantities follow their definitions", "[schedule]") {
  for (Schedule s : {Schedule::paper_linear(50), Schedule::ddpm_linear(1000), Schedule::cosine(100)}) {
    double abar = 1;
    for (int64_t t = 1; t <= s.T(); ++t) {
      abar *= 1 - s.beta(t);
      CHECK(s.abar(t) == Approx(abar).epsilon(1e-14));
      CHECK(s.snr(t) == Approx(abar / (1 - abar)).epsilon(1e-12));
      CHECK(s.posterior_variance(t) ==
            Approx(s.beta(t) * (1 - s.abar(t - 1)) / (1 - s.abar(t))).epsilon(1e-14));
      // The posterior mean of x_{t-1} is exact when x_t is the forward step of x_{t-1}:
      // with x_0 = 1 and no noise, x_{t-1} = sqrt(abar_{t-1}), x_t = sqrt(abar_t).
      double mean = s.posterior_coef_x0(t) * 1.0 + s.posterior_coef_xt(t) * std::sqrt(s.abar(t));
      CHECK(mean == Approx(std::sqrt(s.abar(t - 1))).epsilon(1e-12));
    }
  }
  CHECK(Schedule::ddpm_linear(1000).beta(1) == Approx(1e-4));
  CHECK(Schedule::ddpm_linear(1000).beta(1000) == Approx(0.02));
  Schedule c = Schedule::cosine(1000);
  CHECK(c.beta(1000) == Approx(0.999));
  CHECK(c.posterior_variance(1) == 0.0);
}

TEST_CASE("SNR matching picks the nearest step", "[schedule]") {
  Schedule s = Schedule::paper_linear(300);
  CHECK(s.nearest_step(1e4) == 1);
  CHECK(s.nearest_step(1e-4) == 300);
  for (double snr_db : {-20.0, -10.0, 0.0, 10.0, 20.0}) {
    double snr = std::pow(10.0, snr_db / 10);
    int64_t t = s.nearest_step(snr);
    for (int64_t u = 1; u <= s.T(); ++u)
      CHECK(std::fabs(s.snr(t) - snr) <= std::fabs(s.snr(u) - snr));
    int64_t t_db = s.nearest_step(snr, true);
    CHECK(std::abs(t_db - t) <= 1);
  }
  CHECK_THROWS_AS(s.nearest_step(0), std::invalid_argument);
}

TEST_CASE("schedule config round-trips and rejects bad fields", "[schedule]") {
  Schedule s = Schedule::from_json({{"kind", "cosine"}, {"T", 40}});
  CHECK(s.kind() == ScheduleKind::cosine);
  CHECK(Schedule::from_json(s.to_json()).beta(17) == s.beta(17));
  CHECK_THROWS_WITH(Schedule::from_json({{"kind", "quadratic"}, {"T", 40}}),
                    Catch::Contains("quadratic"));
  CHECK_THROWS_WITH(Schedule::from_json({{"kind", "cosine"}, {"T", "x"}}), Catch::Contains("'T'"));
  CHECK_THROWS_WITH(Schedule::from_json({{"kind", "cosine"}, {"T", 4}, {"s", 1}}),
                    Catch::Contains("'s'"));
  CHECK_THROWS_AS(Schedule::paper_linear(0), std::invalid_argument);
  CHECK_THROWS_AS(s.beta(41), std::out_of_range);
}
