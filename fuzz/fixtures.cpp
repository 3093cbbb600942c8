#include "fuzz/fixtures.hpp"

#include <cmath>

#include "autograd/ops.hpp"
#include "nn/activation.hpp"
#include "nn/batchnorm.hpp"
#include "nn/linear.hpp"

namespace dpm::fuzz {

std::shared_ptr<nn::Sequential> make_small_model() {
  Rng rng(7);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(1, 8, rng), std::make_shared<nn::BatchNorm>(8),
      std::make_shared<nn::SiLU>(), std::make_shared<nn::Linear>(8, 1, rng)});
}

TinyTrainer make_tiny_trainer() {
  TinyTrainer t;
  t.model = make_small_model();
  t.optimizer = std::make_unique<optim::Adam>(t.model->arena(), optim::AdamOptions{.lr = 1e-2});
  Tensor data = Tensor::empty({32, 2});
  for (int64_t i = 0; i < 32; ++i) {
    float x = static_cast<float>(i) / 16.0f - 1.0f;
    data.at({i, 0}) = x;
    data.at({i, 1}) = std::sin(3.0f * x);
  }
  train::TrainerOptions options;
  options.batch_size = 8;
  options.max_steps = 3;
  options.ema_decay = 0.9;
  options.progress = false;
  auto model = t.model;
  train::LossFn loss = [model](const datasets::Batch& batch, Rng&) {
    Variable xy(batch.data);
    return mse_loss(model->forward(slice(xy, 1, 0, 1)), slice(xy, 1, 1, 2));
  };
  t.trainer =
      std::make_unique<train::Trainer>(*t.model, *t.optimizer, loss, data, Tensor(), options);
  return t;
}

}  // namespace dpm::fuzz
