#include "distributed/shared_items.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace dpm::dist {

std::vector<int> assign_items(int64_t items, int ranks, const std::vector<double>& costs) {
  if (items < 0 || ranks < 1)
    throw std::invalid_argument("assign_items: " + std::to_string(items) + " items over " +
                                std::to_string(ranks) + " ranks");
  if (!costs.empty() && costs.size() != static_cast<size_t>(items))
    throw std::invalid_argument("assign_items: " + std::to_string(costs.size()) + " costs for " +
                                std::to_string(items) + " items");
  std::vector<int> owners(static_cast<size_t>(items));
  if (costs.empty()) {
    for (int64_t i = 0; i < items; ++i) owners[i] = static_cast<int>(i % ranks);
    return owners;
  }
  std::vector<int64_t> order(static_cast<size_t>(items));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  for (int64_t i : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owners[i] = static_cast<int>(least);
    load[least] += costs[i];
  }
  return owners;
}

int64_t items_of(const std::vector<int>& owners, int rank) {
  return std::count(owners.begin(), owners.end(), rank);
}

std::vector<std::vector<std::byte>> share_items(
    Communicator& ranks, const std::vector<int>& owners,
    const std::function<std::vector<std::byte>(int64_t item)>& compute) {
  const auto items = static_cast<int64_t>(owners.size());
  std::vector<std::vector<std::byte>> outputs(owners.size());
  if (!ranks.distributed()) {
    for (int64_t i = 0; i < items; ++i) outputs[i] = compute(i);
    return outputs;
  }
  for (int owner : owners)
    if (owner < 0 || owner >= ranks.size())
      throw std::invalid_argument("share_items: an item's owner is rank " + std::to_string(owner) +
                                  " of " + std::to_string(ranks.size()));
  // This rank's outputs, each after its length; the gather puts the ranks' blocks in rank order,
  // and each block holds its rank's items in increasing order.
  std::vector<std::byte> mine;
  for (int64_t i = 0; i < items; ++i) {
    if (owners[i] != ranks.rank()) continue;
    const std::vector<std::byte> output = compute(i);
    const auto length = static_cast<uint64_t>(output.size());
    const std::vector<std::byte> header = to_bytes(&length, 1);
    mine.insert(mine.end(), header.begin(), header.end());
    mine.insert(mine.end(), output.begin(), output.end());
  }
  const std::vector<std::byte> all = ranks.allgather(mine);
  size_t at = 0;
  for (int rank = 0; rank < ranks.size(); ++rank)
    for (int64_t i = 0; i < items; ++i) {
      if (owners[i] != rank) continue;
      uint64_t length = 0;
      if (at + sizeof(length) > all.size())
        throw std::logic_error("share_items: the gathered outputs end early");
      std::memcpy(&length, all.data() + at, sizeof(length));
      at += sizeof(length);
      if (length > all.size() - at)
        throw std::logic_error("share_items: the gathered outputs end early");
      outputs[i].assign(all.begin() + static_cast<ptrdiff_t>(at),
                        all.begin() + static_cast<ptrdiff_t>(at + length));
      at += length;
    }
  return outputs;
}

}  // namespace dpm::dist
