// train_mlp: dpmlab used as a library. Draws the paper's random GMM (N = 64, K = 128), trains the
// residual MLP noise model on its samples (paper-linear schedule, T = 300, L_simple, Adam), then
// denoises noisy test samples with the paper's DPM denoiser and prints its NMSE beside that of the
// conditional mean estimator (CME), the MMSE optimum, which a GMM prior gives in closed form.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <string>

#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/denoiser.hpp"
#include "diffusion/objective.hpp"
#include "diffusion/prediction.hpp"
#include "nn/mlp.hpp"
#include "nn/optim/adam.hpp"
#include "trainers/trainer.hpp"

using namespace dpm;

int run(int64_t steps) {
  // Data normalised to zero mean and unit power per entry (SNR = 1 / sigma^2), and their law.
  Rng gmm_rng(2024), data_rng(1), init_rng(2), noise_rng(3);
  const datasets::Gmm raw_gmm = datasets::make_random_gmm(gmm_rng);
  const Tensor raw_train = raw_gmm.sample(20000, data_rng);
  const auto normalization = datasets::Normalization::fit(raw_train);
  const datasets::Gmm gmm = normalization.apply(raw_gmm);
  const Tensor train = normalization.apply(raw_train);
  const Tensor test = gmm.sample(500, data_rng);

  // The DM: network, schedule, objective (default options: L_simple on eps) and optimizer.
  auto model = std::make_shared<nn::ResidualMLP>(nn::ResidualMLPOptions{.dim = gmm.dim}, init_rng);
  const auto schedule = diffusion::Schedule::paper_linear(300);
  auto objective =
      std::make_shared<diffusion::Objective>(model, schedule, diffusion::ObjectiveOptions{});
  optim::Adam adam(model->arena(), optim::AdamOptions{.lr = 1e-3});
  train::TrainerOptions options;
  options.max_steps = steps;  // no validation data: no early stopping; no out_dir: no files
  train::Trainer trainer(*model, adam, diffusion::make_loss_fn(objective), train, Tensor(),
                         options);
  const train::TrainResult result = trainer.fit();
  const double test_loss = trainer.evaluate(test);
  std::printf("residual MLP, %lld parameters, %d threads: %.1f s (%s); test L_simple %.4f\n",
              static_cast<long long>(model->parameter_count()), num_threads(), result.seconds,
              result.message.c_str(), test_loss);
  bool finite = result.reason != train::StopReason::non_finite && std::isfinite(test_loss);

  // y = x + n at each SNR; the DM estimate (mean forwarding from the matched step) and the CME.
  diffusion::NetworkPredictor predictor(model, schedule);
  std::printf("%8s  %8s  %8s  %6s\n", "SNR [dB]", "NMSE DM", "NMSE CME", "steps");
  for (double snr_db : {-10.0, 0.0, 10.0, 20.0}) {
    const double sigma2 = datasets::snr_db_to_sigma2(snr_db);
    Tensor y = test.clone();
    y.add_(randn(test.shape(), noise_rng, 0.0f, static_cast<float>(std::sqrt(sigma2))));
    const auto dm =
        diffusion::denoise(diffusion::Estimator{}, diffusion::DoubleBatch::from_tensor(y),
                           1.0 / sigma2, predictor, schedule, noise_rng);
    const double nmse_dm = datasets::nmse(test, dm.x_hat.to_tensor());
    const double nmse_cme = datasets::nmse(test, gmm.cme(y, sigma2));
    std::printf("%8.0f  %8.4f  %8.4f  %6lld\n", snr_db, nmse_dm, nmse_cme,
                static_cast<long long>(dm.evaluations));
    finite = finite && std::isfinite(nmse_dm) && std::isfinite(nmse_cme);
  }
  std::printf("train_mlp: %s\n", finite ? "all values finite" : "a loss or an NMSE is NOT finite");
  return finite ? 0 : 1;
}

int main(int argc, char** argv) {
  std::map<std::string, int64_t> args{{"--steps", 3000}, {"--threads", 0}};  // 0 threads: all
  bool usage_ok = argc % 2 == 1;
  for (int i = 1; usage_ok && i < argc; i += 2) {
    usage_ok = args.contains(argv[i]);
    if (usage_ok) args[argv[i]] = std::atoll(argv[i + 1]);
  }
  if (!usage_ok || args["--steps"] < 1 || args["--threads"] < 0) {
    std::fprintf(stderr, "usage: %s [--steps N >= 1] [--threads N >= 0]\n", argv[0]);
    return 2;
  }
  try {
    set_num_threads(static_cast<int>(args["--threads"]));
    return run(args["--steps"]);
  } catch (const std::exception& e) {  // the library throws on bad arguments and bad data
    std::fprintf(stderr, "train_mlp: %s\n", e.what());
    return 1;
  }
}
