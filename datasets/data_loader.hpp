#pragma once
// DataLoader: mini-batches over a tensor [n, ...] (and optional labels), reshuffled every epoch.
// The order of epoch e is a permutation drawn from rng.split(e), so it depends only on the
// generator's seed/stream and the epoch, never on how many batches were drawn before. The position
// (epoch, samples consumed, generator state) is serialisable, so training resumes exactly
// mid-epoch.
// Also: seeded train/validation/test splits.
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/tensor.hpp"

namespace dpm::datasets {

struct RowRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct Batch {
  Tensor data;                   // [b, ...]
  std::vector<int64_t> labels;   // b entries, or empty when the loader has no labels
  std::vector<int64_t> indices;  // rows of the dataset in this batch
  // The rows a loss is computed on: all b, except in data-parallel training, where each rank
  // takes its shard of the global batch (a loss that draws noise draws it for all b rows, so
  // the result does not depend on the number of ranks; one that ignores this computes the whole
  // batch, which is correct but redundant). Unset: all rows.
  std::optional<RowRange> shard;
  RowRange loss_rows() const { return shard ? *shard : RowRange{0, data.size(0)}; }
};

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;     // false: every epoch in dataset order
  bool drop_last = false;  // drop the final batch of an epoch when it is smaller than batch_size
};

struct DataLoaderPosition {
  int64_t epoch = 0;
  int64_t index = 0;  // samples of this epoch already handed out
  Rng::State rng_state{};

  // One line of decimal words: "epoch index s0 s1 s2 s3 seed stream".
  std::string serialize() const;
  // Throws std::invalid_argument on anything but the output of serialize().
  static DataLoaderPosition deserialize(const std::string& text);
  bool operator==(const DataLoaderPosition&) const = default;
};

class DataLoader {
 public:
  // labels: empty, or one per row of data. Throws std::invalid_argument for an empty dataset, a
  // batch size < 1, a labels count that differs from n, or drop_last leaving no batch at all.
  DataLoader(Tensor data, DataLoaderOptions options, Rng rng = Rng(0),
             std::vector<int64_t> labels = {});

  // The next batch; when the current epoch is exhausted it starts the next epoch first, so
  // repeated calls give an endless stream (for step-based training).
  Batch next_batch();
  bool epoch_done() const;
  int64_t batches_per_epoch() const;
  int64_t size() const { return n_; }
  int64_t epoch() const { return position_.epoch; }

  // Jumps to the start of epoch e.
  void start_epoch(int64_t epoch);
  const DataLoaderPosition& position() const { return position_; }
  // Continues from a saved position: the following batches equal those the saved loader gave.
  void set_position(const DataLoaderPosition& position);

  // Range-for over the remaining batches of the current epoch (of the next one when the current
  // epoch is done), so `for (const Batch& b : loader)` run twice yields two full epochs.
  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    explicit Iterator(DataLoader* loader) : loader_(loader) { advance(); }
    const Batch& operator*() const { return batch_; }
    const Batch* operator->() const { return &batch_; }
    Iterator& operator++() {
      advance();
      return *this;
    }
    bool operator==(std::default_sentinel_t) const { return done_; }

   private:
    void advance();
    DataLoader* loader_;
    Batch batch_;
    bool done_ = false;
  };
  Iterator begin();
  std::default_sentinel_t end() const { return {}; }

 private:
  int64_t epoch_samples() const;  // samples handed out per epoch (n, or fewer with drop_last)
  void compute_order();

  Tensor data_;
  std::vector<int64_t> labels_;
  DataLoaderOptions options_;
  Rng rng_;
  int64_t n_ = 0;
  DataLoaderPosition position_;
  std::vector<int64_t> order_;  // permutation of the current epoch
};

// Rows of data (along dim 0) at the given indices, as a new contiguous tensor.
Tensor gather_rows(const Tensor& data, const std::vector<int64_t>& indices);

// Disjoint index sets of the given sizes drawn through a seeded permutation of 0..n-1; each set
// is sorted, so parts keep the dataset's order. The counts may sum to less than n (the rest is
// left out), never more.
std::vector<std::vector<int64_t>> split_indices(int64_t n, const std::vector<int64_t>& counts,
                                                Rng& rng);
// Counts from fractions that sum to 1: floor(f * n) each, the remaining samples going one by one
// to the parts with the largest fractional remainders (ties: the earlier part).
std::vector<int64_t> counts_from_fractions(int64_t n, const std::vector<double>& fractions);

// e.g. split_by_fractions(x, {0.8, 0.1, 0.1}, rng) -> {train, validation, test}.
std::vector<Tensor> split_by_counts(const Tensor& data, const std::vector<int64_t>& counts,
                                    Rng& rng);
std::vector<Tensor> split_by_fractions(const Tensor& data, const std::vector<double>& fractions,
                                       Rng& rng);

}  // namespace dpm::datasets
