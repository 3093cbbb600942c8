#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "datasets/data_loader.hpp"

using dpm::Rng;
using dpm::Shape;
using dpm::Tensor;
using dpm::datasets::Batch;
using dpm::datasets::DataLoader;
using dpm::datasets::DataLoaderOptions;
using dpm::datasets::DataLoaderPosition;

namespace {

// Row i of [n, 2, 3] holds 6 values that encode i, so rows can be checked against their index.
Tensor numbered_rows(int64_t n) {
  Tensor t = Tensor::empty(Shape{n, 2, 3});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < 6; ++j) t.data()[i * 6 + j] = static_cast<float>(i * 10 + j);
  return t;
}

std::vector<int64_t> labels_for(int64_t n) {
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = 1000 + i;
  return labels;
}

// Checks the batch's rows and labels against its indices; returns the indices.
std::vector<int64_t> checked_indices(const Batch& batch, bool has_labels) {
  const int64_t b = static_cast<int64_t>(batch.indices.size());
  REQUIRE(batch.data.shape() == Shape{b, 2, 3});
  for (int64_t k = 0; k < b; ++k) {
    int64_t i = batch.indices[static_cast<size_t>(k)];
    for (int64_t j = 0; j < 6; ++j)
      REQUIRE(batch.data.data()[k * 6 + j] == static_cast<float>(i * 10 + j));
    if (has_labels) REQUIRE(batch.labels[static_cast<size_t>(k)] == 1000 + i);
  }
  if (!has_labels) REQUIRE(batch.labels.empty());
  return batch.indices;
}

// The sample order of one full epoch through range-for.
std::vector<int64_t> epoch_order(DataLoader& loader, std::vector<int64_t>* batch_sizes = nullptr) {
  std::vector<int64_t> order;
  for (const Batch& batch : loader) {
    std::vector<int64_t> idx = checked_indices(batch, false);
    if (batch_sizes) batch_sizes->push_back(static_cast<int64_t>(idx.size()));
    order.insert(order.end(), idx.begin(), idx.end());
  }
  return order;
}

}  // namespace

TEST_CASE("every sample appears exactly once per epoch", "[data_loader]") {
  const int64_t n = 23;
  DataLoader loader(numbered_rows(n), {.batch_size = 5}, Rng(11), labels_for(n));
  CHECK(loader.batches_per_epoch() == 5);
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen, sizes;
    while (!loader.epoch_done()) {
      Batch batch = loader.next_batch();
      std::vector<int64_t> idx = checked_indices(batch, true);
      sizes.push_back(static_cast<int64_t>(idx.size()));
      seen.insert(seen.end(), idx.begin(), idx.end());
    }
    CHECK(loader.epoch() == epoch);
    CHECK(sizes == std::vector<int64_t>{5, 5, 5, 5, 3});
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), int64_t{0});
    CHECK(seen == all);
    loader.next_batch();  // rolls over into the next epoch
    CHECK(loader.epoch() == epoch + 1);
    loader.start_epoch(epoch + 1);
  }

  // drop_last: 4 full batches, the same 20 distinct samples are a subset of 0..22.
  DataLoader dropping(numbered_rows(n), {.batch_size = 5, .drop_last = true}, Rng(11));
  std::vector<int64_t> sizes;
  std::vector<int64_t> order = epoch_order(dropping, &sizes);
  CHECK(sizes == std::vector<int64_t>{5, 5, 5, 5});
  CHECK(std::set<int64_t>(order.begin(), order.end()).size() == 20);

  // shuffle off: dataset order every epoch.
  DataLoader ordered(numbered_rows(7), {.batch_size = 3, .shuffle = false});
  for (int epoch = 0; epoch < 2; ++epoch)
    CHECK(epoch_order(ordered) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});
}

TEST_CASE("the order depends only on the seed and the epoch", "[data_loader]") {
  const int64_t n = 50;
  DataLoader a(numbered_rows(n), {.batch_size = 8}, Rng(5));
  DataLoader b(numbered_rows(n), {.batch_size = 8}, Rng(5));
  DataLoader c(numbered_rows(n), {.batch_size = 8}, Rng(6));
  std::vector<int64_t> a0 = epoch_order(a), a1 = epoch_order(a);
  CHECK(a0 == epoch_order(b));
  CHECK(a1 == epoch_order(b));
  CHECK(a0 != a1);  // different epochs, different orders
  CHECK(a0 != epoch_order(c));
  // Jumping straight to epoch 1 gives epoch 1's order, whatever came before; batch size does not
  // change the sample order either.
  DataLoader d(numbered_rows(n), {.batch_size = 3}, Rng(5));
  d.start_epoch(1);
  CHECK(epoch_order(d) == a1);
}

TEST_CASE("resuming from a saved position continues identically", "[data_loader]") {
  const int64_t n = 37;
  DataLoaderOptions options{.batch_size = 4};
  DataLoader original(numbered_rows(n), options, Rng(99), labels_for(n));
  for (int i = 0; i < 13; ++i) original.next_batch();  // into epoch 1, mid-epoch
  const DataLoaderPosition saved = original.position();
  CHECK(saved.epoch == 1);
  CHECK(saved.index == 12);

  const std::string text = saved.serialize();
  CHECK(DataLoaderPosition::deserialize(text) == saved);
  // A loader built with another seed takes the generator from the position.
  DataLoader resumed(numbered_rows(n), options, Rng(12345), labels_for(n));
  resumed.set_position(DataLoaderPosition::deserialize(text));
  for (int i = 0; i < 25; ++i) {  // the rest of epoch 1 and into epoch 2
    Batch x = original.next_batch(), y = resumed.next_batch();
    CHECK(x.indices == y.indices);
    CHECK(x.labels == y.labels);
    CHECK(x.data.to_vector() == y.data.to_vector());
  }
  CHECK(original.position() == resumed.position());

  CHECK_THROWS_WITH(DataLoaderPosition::deserialize("1 2 3"), Catch::Contains("\"1 2 3\""));
  CHECK_THROWS_AS(DataLoaderPosition::deserialize(text + " 7"), std::invalid_argument);
  DataLoaderPosition beyond = saved;
  beyond.index = n + 1;
  CHECK_THROWS_WITH(resumed.set_position(beyond), Catch::Contains("index 38"));
}

TEST_CASE("data loader rejects bad arguments", "[data_loader]") {
  CHECK_THROWS_WITH(DataLoader(Tensor::zeros(Shape{0, 3}), {}), Catch::Contains("n > 0"));
  CHECK_THROWS_WITH(DataLoader(numbered_rows(4), {.batch_size = 0}),
                    Catch::Contains("batch_size is 0"));
  CHECK_THROWS_WITH(DataLoader(numbered_rows(4), {}, Rng(0), {1, 2, 3}),
                    Catch::Contains("3 labels for 4 samples"));
  CHECK_THROWS_WITH(DataLoader(numbered_rows(4), {.batch_size = 5, .drop_last = true}),
                    Catch::Contains("leaves no batch"));
}

TEST_CASE("splits have the requested sizes and are disjoint", "[data_loader]") {
  using dpm::datasets::counts_from_fractions;
  const int64_t n = 101;
  Tensor data = numbered_rows(n);
  Rng rng(3);
  std::vector<Tensor> parts = dpm::datasets::split_by_fractions(data, {0.8, 0.1, 0.1}, rng);
  REQUIRE(parts.size() == 3);
  // 80.8, 10.1, 10.1 -> floors 80, 10, 10; the one left over goes to the largest remainder.
  CHECK(parts[0].size(0) == 81);
  CHECK(parts[1].size(0) == 10);
  CHECK(parts[2].size(0) == 10);
  std::set<int64_t> seen;
  for (const Tensor& part : parts) {
    CHECK(part.shape() == Shape{part.size(0), 2, 3});
    for (int64_t k = 0; k < part.size(0); ++k) {
      int64_t i = static_cast<int64_t>(part.at({k, 0, 0})) / 10;
      for (int64_t j = 0; j < 6; ++j)
        CHECK(part.data()[k * 6 + j] == static_cast<float>(i * 10 + j));
      CHECK(seen.insert(i).second);  // never in two parts
    }
  }
  CHECK(static_cast<int64_t>(seen.size()) == n);

  // Same seed, same split; another seed, another split.
  Rng same(3), other(4);
  CHECK(dpm::datasets::split_by_fractions(data, {0.8, 0.1, 0.1}, same)[1].to_vector() ==
        parts[1].to_vector());
  CHECK(dpm::datasets::split_by_fractions(data, {0.8, 0.1, 0.1}, other)[1].to_vector() !=
        parts[1].to_vector());

  // Counts may leave samples out; index sets are sorted and disjoint.
  Rng r(8);
  std::vector<std::vector<int64_t>> idx = dpm::datasets::split_indices(20, {5, 0, 7}, r);
  CHECK(idx[0].size() == 5);
  CHECK(idx[1].empty());
  CHECK(idx[2].size() == 7);
  std::set<int64_t> all(idx[0].begin(), idx[0].end());
  all.insert(idx[2].begin(), idx[2].end());
  CHECK(all.size() == 12);
  CHECK(std::is_sorted(idx[2].begin(), idx[2].end()));
  CHECK(dpm::datasets::split_by_counts(data, {100, 1}, r)[1].size(0) == 1);

  CHECK(counts_from_fractions(10, {0.25, 0.25, 0.5}) == std::vector<int64_t>{3, 2, 5});
  CHECK(counts_from_fractions(3, {0.5, 0.5}) == std::vector<int64_t>{2, 1});
  CHECK_THROWS_WITH(counts_from_fractions(10, {0.5, 0.4}), Catch::Contains("sum to 0.9"));
  CHECK_THROWS_WITH(counts_from_fractions(10, {1.5, -0.5}), Catch::Contains("outside [0, 1]"));
  CHECK_THROWS_WITH(dpm::datasets::split_indices(10, {6, 5}, r),
                    Catch::Contains("sum to 11") && Catch::Contains("only 10"));
  CHECK_THROWS_WITH(dpm::datasets::split_indices(10, {-1}, r), Catch::Contains("negative"));
}
