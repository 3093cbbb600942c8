#pragma once
// Independent work items spread over the ranks of a run: rank r computes items r, r + R, r + 2R,
// ... (round robin, so items whose cost grows with their index still balance), and every rank
// then holds every item's output, in item order. Each item is computed as one process computes
// it, so the outputs are the single process's, bitwise (the audit's steps, the inverse problems'
// solver runs). On one process the items simply run in order.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "distributed/communicator.hpp"

namespace dpm::dist {

// Whether this rank computes `item`, and how many of `items` it computes.
bool owns(const Communicator& ranks, int64_t item);
int64_t items_owned(const Communicator& ranks, int64_t items);

// compute(i) for this rank's items, then one all-gather of the outputs. Collective.
std::vector<std::vector<std::byte>> share_items(
    Communicator& ranks, int64_t items,
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
std::vector<T> share_values(Communicator& ranks, int64_t items,
                            const std::function<T(int64_t item)>& compute) {
  const std::vector<std::vector<std::byte>> shared =
      share_items(ranks, items, [&](int64_t item) {
        const T value = compute(item);
        return to_bytes(&value, 1);
      });
  std::vector<T> values;
  values.reserve(shared.size());
  for (const std::vector<std::byte>& bytes : shared) values.push_back(from_bytes<T>(bytes).at(0));
  return values;
}

}  // namespace dpm::dist
