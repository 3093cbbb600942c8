#include "apps/flop_count.hpp"

#include "autograd/variable.hpp"

namespace dpm::cli {
namespace {

// The FLOPs of one module's own work (children excluded), or 0 when it is not counted.
int64_t own_flops(const nn::Module& module, const Shape& output) {
  const std::string& type = module.type_name();
  if (type == "Linear" || type == "Conv1d" || type == "Conv2d") {
    // weight [out, in] or [Cout, Cin, k...]: each output value costs weight.numel() / out MACs.
    for (const nn::NamedParameter& p : module.named_parameters())
      if (p.name == "weight") {
        const Shape& w = p.variable.shape();
        return 2 * output.numel() * (w.numel() / w[0]);
      }
  }
  if (type == "SelfAttention") {  // output [B, C, spatial...]
    const int64_t batch = output[0], channels = output[1];
    const int64_t positions = output.numel() / (batch * channels);
    return 4 * batch * positions * positions * channels;
  }
  return 0;
}

void walk(const nn::Module& module, const std::string& name, const nn::ShapeRecord& shapes,
          FlopCount& count) {
  if (auto it = shapes.find(&module); it != shapes.end())
    if (int64_t flops = own_flops(module, it->second); flops > 0) {
      count.layers.push_back({name, module.type_name(), flops});
      count.forward += flops;
    }
  for (const auto& [child_name, child] : module.named_children())
    walk(*child, name.empty() ? child_name : name + "." + child_name, shapes, count);
}

}  // namespace

FlopCount count_flops(const nn::Module& model, const nn::ShapeRecord& shapes) {
  FlopCount count;
  walk(model, "", shapes, count);
  return count;
}

FlopCount count_flops(nn::NoiseModel& model, const Shape& input_shape) {
  const bool was_training = model.is_training();
  model.eval();
  nn::ShapeTrace trace;
  {
    NoGradGuard no_grad;
    model.forward(Variable(Tensor::zeros(input_shape)),
                  std::vector<int64_t>(static_cast<size_t>(input_shape[0]), 0));
  }
  model.train(was_training);
  return count_flops(model, trace.shapes());
}

}  // namespace dpm::cli
