#include <unistd.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/ops.hpp"
#include "nn/linear.hpp"
#include "nn/optim/adam.hpp"
#include "nn/sequential.hpp"
#include "tests/temp_dir.hpp"
#include "trainers/spike_detector.hpp"
#include "trainers/trainer.hpp"

using dpm::testing::TempDir;
using namespace dpm;
using train::SpikeDetector;
using train::SpikeDetectorOptions;

namespace {

// mean + sd * N(0, 1), seeded.
std::vector<double> gaussian_sequence(size_t n, double mean, double sd, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> normal(mean, sd);
  std::vector<double> values(n);
  for (double& v : values) v = normal(engine);
  return values;
}

// Indices (0-based) of the values flagged as spikes.
std::vector<size_t> spikes_in(SpikeDetector& detector, const std::vector<double>& values) {
  std::vector<size_t> flagged;
  for (size_t i = 0; i < values.size(); ++i)
    if (detector.observe(values[i])) flagged.push_back(i);
  return flagged;
}

}  // namespace

TEST_CASE("spike detector: plain mean and variance over the first window", "[spike]") {
  SpikeDetector detector;
  std::vector<double> values = gaussian_sequence(50, 3.0, 0.5, 1);
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    detector.observe(values[i]);
    sum += values[i];
    double n = static_cast<double>(i + 1), mean = sum / n;
    double variance = 0;
    for (size_t j = 0; j <= i; ++j) variance += (values[j] - mean) * (values[j] - mean);
    variance /= n;
    INFO("after " << i + 1 << " values");
    CHECK(detector.count() == static_cast<int64_t>(i + 1));
    CHECK(detector.mean() == Approx(mean).epsilon(1e-12));
    CHECK(detector.variance() == Approx(variance).epsilon(1e-9).margin(1e-15));
  }
}

TEST_CASE("spike detector: noise alone never alarms, a 10-sigma value does", "[spike]") {
  for (uint64_t seed : {1, 2, 3}) {
    INFO("seed " << seed);
    std::vector<double> values = gaussian_sequence(2000, 1.0, 0.05, seed);
    SpikeDetector quiet;
    CHECK(spikes_in(quiet, values).empty());

    values[700] = 1.0 + 10 * 0.05;
    values[1500] = 1.0 + 12 * 0.05;
    SpikeDetector detector;
    CHECK(spikes_in(detector, values) == std::vector<size_t>{700, 1500});
  }
}

TEST_CASE("spike detector: the z-score it reports and the threshold", "[spike]") {
  SpikeDetector detector(SpikeDetectorOptions{.z = 6, .warmup = 2, .window = 50});
  detector.observe(1.0);
  detector.observe(3.0);               // mean 2, variance 1
  CHECK_FALSE(detector.observe(7.9));  // z = 5.9
  SpikeDetector again(SpikeDetectorOptions{.z = 6, .warmup = 2, .window = 50});
  again.observe(1.0);
  again.observe(3.0);
  auto z = again.observe(8.5);
  REQUIRE(z);
  CHECK(*z == Approx(6.5));
  // Below the mean is never a spike, however far.
  CHECK_FALSE(again.observe(-1e6));
}

TEST_CASE("spike detector: nothing fires during the warm-up", "[spike]") {
  SpikeDetector detector;  // warm-up 50
  std::vector<double> values = gaussian_sequence(60, 1.0, 0.01, 4);
  values[10] = 1000;  // a huge early value: training often starts with large losses
  values[49] = 1000;
  std::vector<size_t> flagged = spikes_in(detector, values);
  for (size_t i : flagged) CHECK(i >= 50);
}

TEST_CASE("spike detector: a decaying training loss does not alarm", "[spike]") {
  // loss_t = 0.05 + 2 exp(-t / 300) with 3% multiplicative noise.
  std::vector<double> noise = gaussian_sequence(5000, 0.0, 0.03, 5);
  SpikeDetector detector;
  std::vector<double> values;
  for (size_t t = 0; t < noise.size(); ++t)
    values.push_back((0.05 + 2 * std::exp(-static_cast<double>(t) / 300)) * (1 + noise[t]));
  CHECK(spikes_in(detector, values).empty());
}

TEST_CASE("spike detector: a lasting jump alarms once or twice, not on every step", "[spike]") {
  std::vector<double> values = gaussian_sequence(600, 1.0, 0.05, 6);
  for (size_t i = 300; i < values.size(); ++i) values[i] += 1.0;  // +20 sigma from step 300 on
  SpikeDetector detector;
  std::vector<size_t> flagged = spikes_in(detector, values);
  REQUIRE_FALSE(flagged.empty());
  CHECK(flagged.front() == 300);
  CHECK(flagged.size() <= 3);
  CHECK(flagged.back() < 310);
}

TEST_CASE("spike detector: a flat plateau needs a real rise", "[spike]") {
  SpikeDetector detector;
  for (int i = 0; i < 100; ++i) detector.observe(0.25);  // variance exactly 0
  CHECK_FALSE(detector.observe(0.25 * (1 + 1e-6)));      // rounding-level change
  CHECK(detector.observe(0.25 * 1.1));                   // 10%: 100 floored sigmas
}

TEST_CASE("spike detector: non-finite values are ignored", "[spike]") {
  SpikeDetector detector(SpikeDetectorOptions{.warmup = 0});
  detector.observe(1.0);
  CHECK_FALSE(detector.observe(NAN));
  CHECK_FALSE(detector.observe(INFINITY));
  CHECK(detector.count() == 1);
  CHECK(detector.mean() == 1.0);
}

TEST_CASE("spike detector: state round trip continues identically", "[spike]") {
  std::vector<double> values = gaussian_sequence(400, 2.0, 0.2, 7);
  values[250] = 5.0;
  SpikeDetector straight;
  std::vector<size_t> expected = spikes_in(straight, values);
  REQUIRE(expected == std::vector<size_t>{250});

  SpikeDetector first;
  std::vector<double> head(values.begin(), values.begin() + 200);
  CHECK(spikes_in(first, head).empty());
  SpikeDetector second;
  second.load_state_json(nlohmann::json::parse(first.state_json().dump()));  // as in a resume file
  std::vector<double> tail(values.begin() + 200, values.end());
  CHECK(spikes_in(second, tail) == std::vector<size_t>{50});
  CHECK(second.mean() == straight.mean());
  CHECK(second.variance() == straight.variance());
}

TEST_CASE("spike detector: bad options and bad states are rejected", "[spike]") {
  CHECK_THROWS_AS(SpikeDetector(SpikeDetectorOptions{.z = -1}), std::invalid_argument);
  CHECK_THROWS_AS(SpikeDetector(SpikeDetectorOptions{.window = 0}), std::invalid_argument);
  CHECK_THROWS_AS(SpikeDetector(SpikeDetectorOptions{.warmup = -2}), std::invalid_argument);
  SpikeDetector detector;
  CHECK_THROWS_WITH(detector.load_state_json({{"count", 3}, {"mean", 1.0}}),
                    Catch::Contains("'variance'"));
  CHECK_THROWS_WITH(detector.load_state_json({{"count", 1.5}, {"mean", 1.0}, {"variance", 0.0}}),
                    Catch::Contains("integer count"));
  CHECK_THROWS_WITH(detector.load_state_json({{"count", 3}, {"mean", 1.0}, {"variance", -1.0}}),
                    Catch::Contains("variance >= 0"));
  CHECK_THROWS_AS(detector.load_state_json(nlohmann::json::array()), std::invalid_argument);
  CHECK(detector.count() == 0);
}

namespace {

// Captures what the code under test writes to stderr (fd 2) in a file.
class StderrCapture {
 public:
  explicit StderrCapture(std::string path) : path_(std::move(path)) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    std::FILE* f = std::fopen(path_.c_str(), "w");
    REQUIRE(f != nullptr);
    ::dup2(::fileno(f), STDERR_FILENO);
    std::fclose(f);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    std::ifstream in(path_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }
  std::string path_;
  int saved_ = -1;
};

}  // namespace

TEST_CASE("trainer: a loss spike is reported on stderr and in the metrics", "[spike][trainer]") {
  TempDir tmp("dpm_spike_trainer");
  Rng rng(3);
  auto model = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Layer>>{std::make_shared<nn::Linear>(4, 4, rng)});
  optim::Adam adam(model->arena(), optim::AdamOptions{.lr = 1e-3});
  Tensor data = randn({64, 4}, rng);
  auto calls = std::make_shared<int64_t>(0);
  // Regression of a fixed linear map; the 120th loss is scaled up 100 times.
  train::LossFn loss = [model, calls](const datasets::Batch& batch, Rng&) {
    Variable x(batch.data);
    Variable l = mse_loss(model->forward(x), x * 0.5f);
    return ++*calls == 120 ? l * 100.0f : l;
  };
  train::TrainerOptions options;
  options.batch_size = 16;
  options.max_steps = 200;
  options.log_every = 1000;  // no regular metrics lines: only the spike's
  options.out_dir = tmp.path.string();
  options.progress = false;
  train::Trainer trainer(*model, adam, loss, data, Tensor(), options);

  StderrCapture capture(tmp.file("stderr.txt"));
  trainer.fit();
  std::string printed = capture.text();
  CHECK_THAT(printed, Catch::Contains("warning: spike at step 120; loss") &&
                          Catch::Contains("gradient norm"));

  std::ifstream metrics(trainer.metrics_path());
  std::vector<int64_t> spike_steps;
  for (std::string line; std::getline(metrics, line);) {
    auto record = nlohmann::json::parse(line);
    if (record.contains("spike")) {
      CHECK(record["spike"] == true);
      CHECK(record.contains("grad_norm"));
      CHECK(record.contains("loss"));
      spike_steps.push_back(record["step"].get<int64_t>());
    }
  }
  CHECK(spike_steps == std::vector<int64_t>{120});
}
