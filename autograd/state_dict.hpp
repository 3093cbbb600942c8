#pragma once
// State dicts: how everything that is saved (a module's weights and buffers, an optimizer's
// moments, the EMA, the spectral tracker's vectors, the importance sampler's history) hands out
// and takes back its tensors. Every saved thing has the libtorch pair
//   NamedTensors state_dict() const;                     // live tensors, names local to it
//   void load_state_dict(const NamedTensors& state);     // strict, copies into its storage
// A container saves each part under "<part>." (with_prefix) and gives each part back the
// entries under its prefix (entries_under). Loaders check with match_state_dict, so a bad dict
// names every missing, unexpected and wrongly shaped entry and loads nothing.
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace dpm {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The entries with `prefix` put before every name.
NamedTensors with_prefix(const std::string& prefix, const NamedTensors& state);
// The entries whose names start with `prefix`, with the prefix removed.
NamedTensors entries_under(const std::string& prefix, const NamedTensors& state);

// Matches `given` against `expected` (the names and shapes the loader holds, e.g. its own
// state_dict()) and returns the given tensor of every expected entry, in expected's order.
// Throws std::invalid_argument "<owner>: missing tensor 'a' (expected shape [3]); unexpected
// tensor 'b' (shape [2]); tensor 'c' has shape [2], expected [3]; tensor 'd' given twice",
// listing every problem (unexpected ones in given's order).
std::vector<Tensor> match_state_dict(const std::string& owner, const NamedTensors& expected,
                                     const NamedTensors& given);

}  // namespace dpm
