#include "autograd/state_dict.hpp"

#include <stdexcept>
#include <unordered_map>

namespace dpm {

NamedTensors with_prefix(const std::string& prefix, const NamedTensors& state) {
  NamedTensors out;
  out.reserve(state.size());
  for (const auto& [name, tensor] : state) out.emplace_back(prefix + name, tensor);
  return out;
}

NamedTensors entries_under(const std::string& prefix, const NamedTensors& state) {
  NamedTensors out;
  for (const auto& [name, tensor] : state)
    if (name.compare(0, prefix.size(), prefix) == 0)
      out.emplace_back(name.substr(prefix.size()), tensor);
  return out;
}

std::vector<Tensor> match_state_dict(const std::string& owner, const NamedTensors& expected,
                                     const NamedTensors& given) {
  std::unordered_map<std::string, size_t> index;  // name -> position in expected
  for (size_t i = 0; i < expected.size(); ++i) index.emplace(expected[i].first, i);

  std::vector<Tensor> matched(expected.size());
  std::vector<bool> present(expected.size(), false);
  std::vector<std::string> problems;
  for (const auto& [name, tensor] : given) {
    auto found = index.find(name);
    if (found == index.end()) {
      problems.push_back("unexpected tensor '" + name + "' (shape " +
                         (tensor.defined() ? tensor.shape().str() : "undefined") + ")");
      continue;
    }
    const Tensor& wanted = expected[found->second].second;
    Tensor& slot = matched[found->second];
    if (present[found->second])
      problems.push_back("tensor '" + name + "' given twice");
    else if (!tensor.defined())
      problems.push_back("tensor '" + name + "' is undefined");
    else if (tensor.shape() != wanted.shape())
      problems.push_back("tensor '" + name + "' has shape " + tensor.shape().str() + ", expected " +
                         wanted.shape().str());
    else
      slot = tensor;
    present[found->second] = true;
  }
  for (size_t i = 0; i < expected.size(); ++i)
    if (!present[i])
      problems.push_back("missing tensor '" + expected[i].first + "' (expected shape " +
                         expected[i].second.shape().str() + ")");
  if (!problems.empty()) {
    std::string message = owner + ": ";
    for (size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    throw std::invalid_argument(message);
  }
  return matched;
}

}  // namespace dpm
