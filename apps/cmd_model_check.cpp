// dpmlab model check: one forward/backward of a checkpointed model on given inputs, with every
// output and gradient written out, so an independent implementation (tools/compare_torch.py,
// PyTorch) can be compared against ours tensor by tensor.
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/commands.hpp"
#include "autograd/io/safetensors.hpp"
#include "autograd/threading.hpp"
#include "nn/checkpoint.hpp"

namespace dpm::cli {
namespace {

struct CheckArgs {
  std::string checkpoint, input, out;
  int threads = 0;
};

// t is stored as float (the file format is float32 only, exact for integers up to 2^24).
std::vector<int64_t> read_steps(const SafeTensors& file, int64_t batch) {
  Tensor t = file.get("t").contiguous();
  if (t.ndim() != 1 || t.size(0) != batch)
    throw std::invalid_argument("model check: input 't' must be [" + std::to_string(batch) +
                                "] (one step per sample of 'x'), got " + t.shape().str());
  std::vector<int64_t> steps;
  for (int64_t b = 0; b < batch; ++b) {
    float value = t.data()[b];
    if (!(value >= 0.0f) || value != std::floor(value) || value > 16777216.0f)
      throw std::invalid_argument(
          "model check: input 't' must hold integer steps in [0, 2^24], got " +
          std::to_string(value) + " at index " + std::to_string(b));
    steps.push_back(static_cast<int64_t>(value));
  }
  return steps;
}

// Writes, from one train-mode step and one eval-mode pass over the same x and t:
//   out_train, out_eval           the network outputs
//   grad_x, grad.<parameter>      gradients of loss = sum(r * out_train)
//   buffer.<buffer>               buffers after the train step (BatchNorm running statistics)
// The eval pass runs after the train step, so it sees the updated running statistics.
void run_check(const CheckArgs& args) {
  set_num_threads(args.threads);
  std::shared_ptr<nn::NoiseModel> model = nn::load_model(args.checkpoint);
  SafeTensors input = read_safetensors(args.input);
  Variable x(input.get("x").contiguous(), /*requires_grad=*/true);
  std::vector<int64_t> steps = read_steps(input, x.size(0));
  const Tensor& r = input.get("r");

  model->train();
  model->zero_grad();
  Variable out_train = model->forward(x, steps);
  if (r.shape() != out_train.shape())
    throw std::invalid_argument("model check: input 'r' must have the output's shape " +
                                out_train.shape().str() + ", got " + r.shape().str());
  // d(sum(r * out)) / d(out) = r: seed the backward pass with it directly.
  out_train.backward(r.contiguous());

  NamedTensors results{{"out_train", out_train.data()}, {"grad_x", x.grad()}};
  for (const auto& p : model->named_parameters())
    results.emplace_back("grad." + p.name, p.variable.has_grad()
                                               ? p.variable.grad()
                                               : Tensor::zeros(p.variable.shape()));
  for (const auto& [name, buffer] : model->named_buffers())
    results.emplace_back("buffer." + name, buffer.clone());

  model->eval();
  {
    NoGradGuard no_grad;
    results.emplace_back("out_eval", model->forward(x.detach(), steps).data());
  }
  write_safetensors(args.out, results);
  std::cout << "wrote " << args.out << " (" << results.size() << " tensors)\n";
}

}  // namespace

void register_model_check_command(CLI::App& model) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* check = model.add_subcommand(
      "check",
      "Run one train-mode forward/backward and one eval-mode forward of a checkpoint on given "
      "inputs and write every output and gradient (for comparison with another implementation).\n"
      "The input file holds x [B, ...], t [B] (integer steps, as float) and r (the output's "
      "shape); the loss is sum(r * out).\n"
      "Example: dpmlab model check --checkpoint m.safetensors --input in.safetensors "
      "--out res.safetensors");
  check->add_option("--checkpoint", args->checkpoint, "Model checkpoint (dpmlab model init)")
      ->required()
      ->check(CLI::ExistingFile);
  check->add_option("--input", args->input, "safetensors file with x, t and r")
      ->required()
      ->check(CLI::ExistingFile);
  check->add_option("--out", args->out, "safetensors file to write")->required();
  check->add_option("--threads", args->threads, "threads (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  check->callback([args] { run_check(*args); });
}

}  // namespace dpm::cli
