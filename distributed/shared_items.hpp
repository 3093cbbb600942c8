#pragma once
// Independent work items spread over the ranks of a run: each item is computed by one rank (its
// owner, assign_items) and every rank then holds every item's output, in item order. Each item is
// computed as one process computes it, so the outputs are the single process's, bitwise (the
// audit's steps, the inverse problems' solver runs). On one process the items simply run in order.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "distributed/communicator.hpp"

namespace dpm::dist {

// The rank that computes each of `items`: round robin (item i on rank i % ranks); with costs (one
// per item, in any unit), the costliest first, each to the rank with the least cost so far (ties
// to the lower rank), so that ranks finish together when the items' costs differ a lot.
std::vector<int> assign_items(int64_t items, int ranks, const std::vector<double>& costs = {});
// How many of the items `owners` gives to `rank`.
int64_t items_of(const std::vector<int>& owners, int rank);

// compute(i) for this rank's items (owners[i] == rank, in increasing i), then one all-gather of
// the outputs. Collective: every rank passes the same owners.
std::vector<std::vector<std::byte>> share_items(
    Communicator& ranks, const std::vector<int>& owners,
    const std::function<std::vector<std::byte>(int64_t item)>& compute);

// The bytes of trivially copyable values, and back: every rank runs the same binary.
template <typename T>
std::vector<std::byte> to_bytes(const T* values, size_t count) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::vector<std::byte> bytes(count * sizeof(T));
  if (count > 0) std::memcpy(bytes.data(), values, bytes.size());
  return bytes;
}
template <typename T>
std::vector<T> from_bytes(const std::vector<std::byte>& bytes) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::vector<T> values(bytes.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

// share_items for one trivially copyable value per item.
template <typename T>
std::vector<T> share_values(Communicator& ranks, const std::vector<int>& owners,
                            const std::function<T(int64_t item)>& compute) {
  const std::vector<std::vector<std::byte>> shared = share_items(ranks, owners, [&](int64_t item) {
    const T value = compute(item);
    return to_bytes(&value, 1);
  });
  std::vector<T> values;
  values.reserve(shared.size());
  for (const std::vector<std::byte>& bytes : shared) values.push_back(from_bytes<T>(bytes).at(0));
  return values;
}

}  // namespace dpm::dist
