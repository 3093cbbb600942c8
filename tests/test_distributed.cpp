// Data-parallel training over MPI (distributed/, trainers/trainer.hpp). The binary runs alone
// (one rank: ctest's own entries) and under `mpirun -np 2` (the mpi_* entries of
// tests/CMakeLists.txt); each case checks what holds at the rank count it finds:
//   - the same seed and rank count give bitwise-identical weights,
//   - one rank (also under mpirun -np 1) equals a single-process run bitwise,
//   - two ranks match the single-process run with the same global batch to float summation
//     tolerance: the MLP's weights, and the U-Net's function with synchronised BatchNorm
//     statistics (the measured differences are printed);
//   - the sharded bound and denoising table equal the single process's, and so do the audit and
//     the inverse-problem benchmark, whose units are shared out.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/variable.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/denoise_bench.hpp"
#include "diffusion/objective.hpp"
#include "diffusion/oracle.hpp"
#include "distributed/communicator.hpp"
#include "distributed/shared_items.hpp"
#include "experiments/inverse_bench.hpp"
#include "experiments/inverse_bench_report.hpp"
#include "experiments/lipschitz_audit.hpp"
#include "experiments/lipschitz_audit_report.hpp"
#include "experiments/report/progress.hpp"
#include "tests/oracle_fixtures.hpp"
#include "tests/temp_dir.hpp"
#include "trainers/dpm_training.hpp"

using namespace dpm;
using dist::Communicator;

namespace {

struct Data {
  Tensor train;
};

Data gmm_data(int64_t dim) {
  Rng rng(41);
  const datasets::Gmm gmm = dpm::testing::random_mixture(rng, dim, 3, 1.0);
  return {gmm.sample(512, rng)};
}

// Trains `config` on the ranks of `comm`.
std::shared_ptr<nn::NoiseModel> trained(train::DpmTrainingConfig config, const Tensor& train,
                                        Communicator& comm) {
  config.trainer.communicator = &comm;
  config.trainer.progress = false;
  return train::train_dpm(config, train, Tensor()).model;
}

std::vector<float> weights_of(nn::NoiseModel& model) {
  const Tensor& values = model.arena().values();
  return {values.data(), values.data() + values.numel()};
}

std::vector<float> trained_weights(const train::DpmTrainingConfig& config, const Tensor& train,
                                   Communicator& comm) {
  return weights_of(*trained(config, train, comm));
}

// The network's outputs on the first rows of `x` at mixed steps, in training mode (batch
// statistics): what a model computes, blind to parameters it does not depend on.
std::vector<float> outputs_of(nn::NoiseModel& model, const Tensor& x) {
  NoGradGuard no_grad;
  model.train();
  std::vector<int64_t> t;
  for (int64_t i = 0; i < x.size(0); ++i) t.push_back(i % 20);
  const Tensor out = model.forward(Variable(x), t).data().contiguous();
  return {out.data(), out.data() + out.numel()};
}

// max_i |a_i - b_i| / max_i |b_i|.
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

train::DpmTrainingConfig mlp_config() {
  train::DpmTrainingConfig config;
  config.model = {
      {"arch", "mlp"}, {"dim", 6}, {"width", 32}, {"depth", 2}, {"time_embedding_size", 8}};
  config.schedule = diffusion::Schedule::paper_linear(20).to_json();
  config.optimizer.lr = 1e-3;
  config.trainer.batch_size = 64;
  config.trainer.max_steps = 300;
  config.trainer.weight_check_every = 50;
  return config;
}

train::DpmTrainingConfig unet_config() {
  train::DpmTrainingConfig config;
  config.model = {{"arch", "unet1d"},      {"data_channels", 1},
                  {"base_channels", 4},    {"channel_multipliers", {1, 2}},
                  {"blocks_per_level", 1}, {"time_embedding_size", 8},
                  {"time_hidden_size", 16}};
  config.schedule = diffusion::Schedule::paper_linear(20).to_json();
  config.optimizer.lr = 1e-3;
  config.trainer.batch_size = 32;
  config.trainer.max_steps = 100;
  config.trainer.sync_batchnorm = true;
  return config;
}

// Where a rank count's result is compared: bitwise on one rank, to `tolerance` on more.
void check_against_single_process(const char* what, const std::vector<float>& ranks,
                                  const std::vector<float>& single, double tolerance) {
  Communicator& world = Communicator::world();
  REQUIRE(ranks.size() == single.size());
  const double difference = relative_difference(ranks, single);
  if (world.is_root())
    std::printf("%s: %d rank(s) against one process: max |a_R - a_1| / max |a_1| = %.3g\n", what,
                world.size(), difference);
  if (!world.distributed())
    CHECK(ranks == single);
  else
    CHECK(difference < tolerance);
}

}  // namespace

TEST_CASE("shards split rows contiguously, larger shares first, covering each row once",
          "[distributed]") {
  for (int size : {1, 2, 3, 7})
    for (int64_t total : {0, 1, 5, 64, 100}) {
      int64_t next = 0;
      for (int rank = 0; rank < size; ++rank) {
        const dist::Shard s = dist::shard_of(total, rank, size);
        CHECK(s.begin == next);
        CHECK(s.size() >= total / size);
        CHECK(s.size() <= total / size + 1);
        next = s.end;
      }
      CHECK(next == total);
    }
  CHECK_THROWS_WITH(dist::shard_of(10, 2, 2), Catch::Contains("rank 2 of 2"));
}

TEST_CASE("collectives: sums, maxima, min-max and gathers over the ranks", "[distributed]") {
  Communicator& world = Communicator::world();
  const int R = world.size(), r = world.rank();
  std::vector<double> sums{static_cast<double>(r + 1), 1.0};
  world.allreduce_sum(sums.data(), 2);
  CHECK(sums[0] == R * (R + 1) / 2.0);
  CHECK(sums[1] == R);
  float floats[3] = {0.5f, 1.0f, static_cast<float>(r)};
  world.allreduce_sum(floats, 3);
  CHECK(floats[0] == 0.5f * R);
  double largest = r;
  world.allreduce_max(&largest, 1);
  CHECK(largest == R - 1);
  const auto [low, high] = world.min_max(static_cast<uint64_t>(10 + r));
  CHECK(low == 10);
  CHECK(high == static_cast<uint64_t>(10 + R - 1));
  std::vector<double> mine(static_cast<size_t>(r + 1), static_cast<double>(r));
  const std::vector<double> all = world.allgather(mine);
  CHECK(all.size() == static_cast<size_t>(R * (R + 1) / 2));
  CHECK(std::is_sorted(all.begin(), all.end()));
  double root_value = r == 0 ? 3.25 : -1.0;
  world.broadcast(&root_value, 1);
  CHECK(root_value == 3.25);
  CHECK(Communicator::self().size() == 1);
}

TEST_CASE("shared items: each computed once on its rank, every output on every rank in order",
          "[distributed]") {
  Communicator& world = Communicator::world();
  for (int64_t items : {0, 1, 5}) {
    // Round robin, and by cost (item 1 costs as much as all the others together).
    for (const std::vector<double>& costs :
         {std::vector<double>{}, std::vector<double>{1, 4, 1, 1, 2}}) {
      if (!costs.empty() && static_cast<int64_t>(costs.size()) != items) continue;
      const std::vector<int> owners = dist::assign_items(items, world.size(), costs);
      int64_t computed = 0;
      const std::vector<std::vector<std::byte>> outputs =
          dist::share_items(world, owners, [&](int64_t i) {
            CHECK(owners[i] == world.rank());
            ++computed;
            const std::vector<double> values(static_cast<size_t>(i), i + 0.5);  // item 0: none
            return dist::to_bytes(values.data(), values.size());
          });
      CHECK(computed == dist::items_of(owners, world.rank()));
      REQUIRE(outputs.size() == static_cast<size_t>(items));
      for (int64_t i = 0; i < items; ++i)
        CHECK(dist::from_bytes<double>(outputs[i]) ==
              std::vector<double>(static_cast<size_t>(i), i + 0.5));
    }
  }
  struct Pair {
    int64_t index;
    double value;
  };
  const std::vector<Pair> pairs =
      dist::share_values<Pair>(world, dist::assign_items(4, world.size()), [](int64_t i) {
        return Pair{i, 0.25 * i};
      });
  REQUIRE(pairs.size() == 4);
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(pairs[i].index == i);
    CHECK(pairs[i].value == 0.25 * i);
  }
}

TEST_CASE("items go round robin, or by cost the costliest first to the least-loaded rank",
          "[distributed]") {
  CHECK(dist::assign_items(5, 2) == std::vector<int>{0, 1, 0, 1, 0});
  CHECK(dist::assign_items(3, 1) == std::vector<int>{0, 0, 0});
  // Costs 1, 10, 1, 1, 8: 10 to rank 0, 8 to rank 1, then the 1s to rank 1 until it ties (the
  // tie to the lower rank).
  const std::vector<int> owners = dist::assign_items(5, 2, {1, 10, 1, 1, 8});
  CHECK(owners == std::vector<int>{1, 0, 1, 0, 1});
  CHECK(dist::items_of(owners, 0) == 2);
  CHECK(dist::items_of(owners, 1) == 3);
  CHECK_THROWS_WITH(dist::assign_items(3, 2, {1, 2}), Catch::Contains("2 costs for 3 items"));
  CHECK_THROWS_WITH(dist::assign_items(3, 0), Catch::Contains("3 items over 0 ranks"));
}

TEST_CASE("data-parallel MLP: bitwise repeatable, and the single-process run's weights",
          "[distributed]") {
  const Data data = gmm_data(6);
  Communicator& world = Communicator::world();
  const std::vector<float> first = trained_weights(mlp_config(), data.train, world);
  const std::vector<float> second = trained_weights(mlp_config(), data.train, world);
  CHECK(first == second);
  const std::vector<float> single = trained_weights(mlp_config(), data.train, Communicator::self());
  check_against_single_process("MLP, 300 steps: weights", first, single, 1e-3);
}

TEST_CASE(
    "data-parallel U-Net with synchronised BatchNorm statistics: bitwise repeatable, and "
    "the single-process run's function",
    "[distributed]") {
  Data data = gmm_data(8);
  data.train = data.train.reshape(Shape{data.train.size(0), 1, 8});
  const Tensor probe = data.train.narrow(0, 0, 32);
  Communicator& world = Communicator::world();
  const auto model = trained(unet_config(), data.train, world);
  CHECK(weights_of(*model) == trained_weights(unet_config(), data.train, world));
  const auto single = trained(unet_config(), data.train, Communicator::self());
  // The weights of the convs that feed a BatchNorm have a zero gradient up to rounding, and
  // Adam turns rounding noise into steps of size lr (sign(g) on the first step): those weights
  // differ by O(lr) between any two summation orders while the network's function does not.
  // So the function is compared; the weights' difference is printed for the record.
  const double weights = relative_difference(weights_of(*model), weights_of(*single));
  if (world.is_root())
    std::printf(
        "U-Net, synchronised BatchNorm, 100 steps: weights max |w_R - w_1| / max |w_1| "
        "= %.3g\n",
        weights);
  check_against_single_process("U-Net, synchronised BatchNorm, 100 steps: outputs",
                               outputs_of(*model, probe), outputs_of(*single, probe), 1e-3);
  if (world.distributed()) {  // per-rank statistics are another model of the batch
    train::DpmTrainingConfig per_rank = unet_config();
    per_rank.trainer.sync_batchnorm = false;
    const auto local = trained(per_rank, data.train, world);
    const double difference =
        relative_difference(outputs_of(*local, probe), outputs_of(*single, probe));
    if (world.is_root())
      std::printf(
          "U-Net, per-rank BatchNorm statistics, 100 steps: outputs max |f_R - f_1| / "
          "max |f_1| = %.3g\n",
          difference);
    CHECK(difference > relative_difference(outputs_of(*model, probe), outputs_of(*single, probe)));
  }
}

TEST_CASE("validation over the ranks: a last batch of one row leaves a rank without rows",
          "[distributed]") {
  const Data data = gmm_data(6);
  const Tensor val = data.train.narrow(0, 0, 65);  // batches of 64 and 1
  train::DpmTrainingConfig config = mlp_config();
  config.trainer.max_steps = 8;  // one epoch: one validation
  config.trainer.steps_per_epoch = 8;
  auto val_loss = [&](Communicator& comm) {
    config.trainer.communicator = &comm;
    config.trainer.progress = false;
    return *train::train_dpm(config, data.train, val).result.best_val_loss;
  };
  const double together = val_loss(Communicator::world());
  CHECK(together == Approx(val_loss(Communicator::self())).epsilon(1e-5));
}

TEST_CASE("importance-sampled steps are refused on a shard of the batch", "[distributed]") {
  Communicator& world = Communicator::world();
  if (!world.distributed()) return;  // one rank computes every row
  train::DpmTrainingConfig config = mlp_config();
  config.objective.loss = diffusion::LossKind::vlb;
  config.objective.importance_sampling = true;
  config.trainer.max_steps = 5;
  CHECK_THROWS_WITH(trained_weights(config, gmm_data(6).train, world),
                    Catch::Contains("importance-sampled"));
}

TEST_CASE("sharded evaluation: the bound and the denoising table equal one process's",
          "[distributed]") {
  Rng rng(43);
  const datasets::Gmm gmm = dpm::testing::random_mixture(rng, 4, 3, 1.0);
  const Tensor rows = gmm.sample(37, rng);  // not a multiple of the ranks
  const diffusion::Schedule schedule = diffusion::Schedule::paper_linear(20);
  diffusion::GmmOracle oracle(gmm, schedule);
  Communicator& world = Communicator::world();

  diffusion::BoundOptions options;
  options.batch_size = 16;  // three batches, each split over the ranks
  const diffusion::BoundResult single = diffusion::evaluate_bound(oracle, schedule, rows, options);
  options.communicator = &world;
  const diffusion::BoundResult shared = diffusion::evaluate_bound(oracle, schedule, rows, options);
  CHECK(shared.samples == single.samples);
  CHECK(shared.bound == Approx(single.bound).epsilon(1e-12));
  CHECK(shared.std_error == Approx(single.std_error).epsilon(1e-9));
  for (int64_t t = 1; t <= schedule.T(); ++t)
    CHECK(shared.per_step[t] == Approx(single.per_step[t]).epsilon(1e-12));

  diffusion::DenoiseBenchOptions bench;
  bench.snr_db = {0, 10};
  bench.estimators = {diffusion::Estimator{},
                      diffusion::Estimator{diffusion::EstimatorKind::tweedie},
                      diffusion::Estimator::parse("posterior-mean-M3")};
  const auto alone = diffusion::run_denoise_bench(gmm, rows, schedule, oracle, bench);
  bench.communicator = &world;
  const auto together = diffusion::run_denoise_bench(gmm, rows, schedule, oracle, bench);
  REQUIRE(alone.size() == together.size());
  for (size_t i = 0; i < alone.size(); ++i) {
    INFO(alone[i].estimator << " at " << alone[i].snr_db << " dB");
    // The same rows' estimates, gathered in order; eps* of fewer rows at a time rounds a little
    // differently (measured: in the last bits).
    CHECK(together[i].nmse == Approx(alone[i].nmse).epsilon(1e-12));
    CHECK(together[i].nmse_se == Approx(alone[i].nmse_se).epsilon(1e-12));
  }
}

namespace {

// `json` without its "seconds" fields (wall times differ from run to run).
nlohmann::json without_times(nlohmann::json json) {
  if (json.is_object()) {
    json.erase("seconds");
    for (auto& [key, value] : json.items()) value = without_times(value);
  } else if (json.is_array()) {
    for (auto& value : json) value = without_times(value);
  }
  return json;
}

}  // namespace

TEST_CASE("sharded experiments: the audit and the inverse-problem benchmark equal one process's",
          "[distributed]") {
  Communicator& world = Communicator::world();
  experiments::report::NullProgress quiet;

  const diffusion::Schedule schedule = diffusion::Schedule::paper_linear(20);
  Rng rng(47);
  diffusion::NetworkPredictor network(
      nn::make_noise_model(
          {{"arch", "mlp"}, {"dim", 6}, {"width", 16}, {"depth", 2}, {"time_embedding_size", 8}},
          rng),
      schedule);
  diffusion::GmmOracle oracle(dpm::testing::random_mixture(rng, 6, 3, 1.0), schedule);
  const experiments::AuditInputs inputs{&network, Shape{6}, oracle.prior().sample(16, rng),
                                        "GMM draws", &oracle};
  experiments::AuditPlan audit;
  audit.t_grid = {{1, 5, 12, 20}};  // with the SNRs' start steps: more units than ranks
  audit.snr = {0, 10};
  audit.samples = 4;
  audit.denoiser_samples = 2;
  audit.oracle_samples = 32;
  audit.seed = 3;
  const nlohmann::json audit_alone = experiments::report::to_json(
      experiments::run_lipschitz_audit(audit, inputs, quiet, Communicator::self()));
  const nlohmann::json audit_shared =
      experiments::report::to_json(experiments::run_lipschitz_audit(audit, inputs, quiet, world));
  // Each step and denoiser is computed whole on one rank: the values are the same bits.
  CHECK(without_times(audit_shared) == without_times(audit_alone));

  dpm::testing::TempDir tmp("dpm_sharded_inverse");
  const std::string gmm = (tmp.path / "gmm.safetensors").string();
  datasets::save_gmm(oracle.prior(), gmm);
  experiments::InverseBenchPlan inverse = experiments::InverseBenchPlan::quick();
  inverse.gmm = gmm;
  inverse.cs_rows = {3};
  inverse.T = 20;
  inverse.dps_steps = 10;
  inverse.nfe_steps = {2, 5};
  inverse.ablation_lambda = {0.1};
  const nlohmann::json inverse_alone =
      experiments::report::to_json(experiments::run(inverse, quiet, Communicator::self()));
  const nlohmann::json inverse_shared =
      experiments::report::to_json(experiments::run(inverse, quiet, world));
  CHECK(without_times(inverse_shared) == without_times(inverse_alone));
}
