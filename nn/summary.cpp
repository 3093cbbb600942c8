#include "nn/summary.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "autograd/rng.hpp"
#include "nn/layer.hpp"
#include "nn/noise_model.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {
namespace {

struct Row {
  std::string name, type, shape, params;
};

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string megabytes(int64_t floats) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", static_cast<double>(floats) * 4.0 / 1e6);
  return buffer;
}

// Runs one forward pass of model on x, recording every module's output shape.
ShapeRecord trace_shapes(Module& model, const Variable& x) {
  struct RestoreMode {
    Module& model;
    bool training;
    ~RestoreMode() { model.train(training); }
  } restore{model, model.is_training()};
  model.eval();
  NoGradGuard no_grad;
  ShapeTrace trace;
  if (auto* noise_model = dynamic_cast<NoiseModel*>(&model))
    noise_model->forward(x, std::vector<int64_t>{0});
  else if (auto* layer = dynamic_cast<Layer*>(&model))
    layer->forward(x);
  else
    throw std::invalid_argument("summary: a " + model.type_name() +
                                " is neither a NoiseModel nor a Layer, so it cannot be run");
  return trace.shapes();
}

void collect_rows(const Module& module, const std::string& name, int depth, int max_depth,
                  const ShapeRecord& shapes, std::vector<Row>& rows) {
  auto shape = shapes.find(&module);
  rows.push_back({std::string(static_cast<size_t>(2 * depth), ' ') + name, module.type_name(),
                  shape == shapes.end() ? "--" : shape->second.str(),
                  with_commas(module.parameter_count())});
  if (max_depth >= 0 && depth >= max_depth) return;
  for (const auto& [child_name, child] : module.named_children())
    collect_rows(*child, name.empty() ? child_name : name + "." + child_name, depth + 1, max_depth,
                 shapes, rows);
}

}  // namespace

std::string summary(Module& model, const Shape& sample_shape, int max_depth) {
  if (sample_shape.ndim() >= kMaxDims)
    throw std::invalid_argument("summary: sample shape " + sample_shape.str() + " has more than " +
                                std::to_string(kMaxDims - 1) + " dims");
  std::vector<int64_t> dims{1};
  for (int64_t d : sample_shape.vec()) dims.push_back(d);
  Rng rng(0);
  Variable x(randn(Shape(dims), rng));
  ShapeRecord shapes = trace_shapes(model, x);

  std::vector<Row> rows{{"Layer", "Type", "Output shape", "Params"}};
  collect_rows(model, "", 0, max_depth, shapes, rows);
  rows[1].name = "(model)";
  size_t widths[4] = {0, 0, 0, 0};
  for (const Row& r : rows) {
    widths[0] = std::max(widths[0], r.name.size());
    widths[1] = std::max(widths[1], r.type.size());
    widths[2] = std::max(widths[2], r.shape.size());
    widths[3] = std::max(widths[3], r.params.size());
  }
  size_t total_width = widths[0] + widths[1] + widths[2] + widths[3] + 6;
  std::ostringstream out;
  auto pad = [](const std::string& s, size_t width) {
    return s + std::string(width - s.size(), ' ');
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out << pad(r.name, widths[0]) << "  " << pad(r.type, widths[1]) << "  "
        << pad(r.shape, widths[2]) << "  " << std::string(widths[3] - r.params.size(), ' ')
        << r.params << '\n';
    if (i == 0) out << std::string(total_width, '=') << '\n';
  }

  int64_t total = 0, trainable = 0, buffers = 0;
  for (const auto& p : model.named_parameters()) {
    total += p.variable.numel();
    if (p.variable.requires_grad()) trainable += p.variable.numel();
  }
  for (const auto& [name, t] : model.named_buffers()) buffers += t.numel();
  out << std::string(total_width, '=') << '\n'
      << "Input shape: " << x.shape().str() << '\n'
      << "Trainable params: " << with_commas(trainable) << '\n'
      << "Non-trainable params: " << with_commas(total - trainable) << '\n'
      << "Buffer elements: " << with_commas(buffers) << '\n'
      << "Params size (MB, float32): " << megabytes(total) << '\n'
      << "Buffers size (MB, float32): " << megabytes(buffers) << '\n'
      << "Total size (MB, float32): " << megabytes(total + buffers) << '\n';
  return out.str();
}

}  // namespace dpm::nn
