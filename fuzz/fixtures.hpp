#pragma once
// The small model and trainer the checkpoint and resume targets load into, shared with the seed
// corpus generator (make_corpus.cpp) so the seeds are valid files for exactly these objects.
#include <memory>

#include "nn/optim/adam.hpp"
#include "nn/sequential.hpp"
#include "trainers/trainer.hpp"

namespace dpm::fuzz {

// Linear(1, 8) -> BatchNorm(8) -> SiLU -> Linear(8, 1): parameters and buffers.
std::shared_ptr<nn::Sequential> make_small_model();

struct TinyTrainer {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Adam> optimizer;
  std::unique_ptr<train::Trainer> trainer;  // Adam + EMA, regression on 32 (x, sin 3x) rows
};
TinyTrainer make_tiny_trainer();

}  // namespace dpm::fuzz
