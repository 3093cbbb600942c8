#include "distributed/shared_items.hpp"

#include <stdexcept>
#include <string>

namespace dpm::dist {

bool owns(const Communicator& ranks, int64_t item) { return item % ranks.size() == ranks.rank(); }

int64_t items_owned(const Communicator& ranks, int64_t items) {
  const int64_t rest = items - ranks.rank();
  return rest <= 0 ? 0 : (rest + ranks.size() - 1) / ranks.size();
}

std::vector<std::vector<std::byte>> share_items(
    Communicator& ranks, int64_t items,
    const std::function<std::vector<std::byte>(int64_t item)>& compute) {
  if (items < 0) throw std::invalid_argument("share_items: " + std::to_string(items) + " items");
  std::vector<std::vector<std::byte>> outputs(static_cast<size_t>(items));
  if (!ranks.distributed()) {
    for (int64_t i = 0; i < items; ++i) outputs[i] = compute(i);
    return outputs;
  }
  // This rank's outputs, each after its length; the gather puts the ranks' blocks in rank order,
  // and each block holds its rank's items in increasing order.
  std::vector<std::byte> mine;
  for (int64_t i = ranks.rank(); i < items; i += ranks.size()) {
    const std::vector<std::byte> output = compute(i);
    const auto length = static_cast<uint64_t>(output.size());
    const std::vector<std::byte> header = to_bytes(&length, 1);
    mine.insert(mine.end(), header.begin(), header.end());
    mine.insert(mine.end(), output.begin(), output.end());
  }
  const std::vector<std::byte> all = ranks.allgather(mine);
  size_t at = 0;
  for (int rank = 0; rank < ranks.size(); ++rank)
    for (int64_t i = rank; i < items; i += ranks.size()) {
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
