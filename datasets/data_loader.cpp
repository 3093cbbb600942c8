#include "datasets/data_loader.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace dpm::datasets {

std::string DataLoaderPosition::serialize() const {
  std::ostringstream out;
  out << epoch << ' ' << index;
  for (uint64_t word : rng_state) out << ' ' << word;
  return out.str();
}

DataLoaderPosition DataLoaderPosition::deserialize(const std::string& text) {
  std::istringstream in(text);
  DataLoaderPosition position;
  in >> position.epoch >> position.index;
  for (uint64_t& word : position.rng_state) in >> word;
  std::string rest;
  if (in.fail() || (in >> rest) || position.epoch < 0 || position.index < 0) {
    throw std::invalid_argument(
        "DataLoaderPosition::deserialize: expected \"epoch index s0 s1 s2 s3 seed stream\" with "
        "non-negative integers, got \"" +
        text + "\"");
  }
  return position;
}

DataLoader::DataLoader(Tensor data, DataLoaderOptions options, Rng rng, std::vector<int64_t> labels)
    : labels_(std::move(labels)), options_(options), rng_(rng) {
  if (!data.defined() || data.ndim() < 1 || data.size(0) == 0) {
    throw std::invalid_argument("DataLoader: data has shape " +
                                (data.defined() ? data.shape().str() : "(undefined)") +
                                "; expected [n, ...] with n > 0");
  }
  data_ = data.contiguous();
  n_ = data_.size(0);
  if (options_.batch_size < 1) {
    throw std::invalid_argument("DataLoader: batch_size is " + std::to_string(options_.batch_size) +
                                "; expected >= 1");
  }
  if (!labels_.empty() && static_cast<int64_t>(labels_.size()) != n_) {
    throw std::invalid_argument("DataLoader: " + std::to_string(labels_.size()) + " labels for " +
                                std::to_string(n_) + " samples");
  }
  if (batches_per_epoch() == 0) {
    throw std::invalid_argument("DataLoader: drop_last with batch_size " +
                                std::to_string(options_.batch_size) + " > " + std::to_string(n_) +
                                " samples leaves no batch");
  }
  position_.rng_state = rng_.state();
  compute_order();
}

int64_t DataLoader::epoch_samples() const {
  return options_.drop_last ? n_ / options_.batch_size * options_.batch_size : n_;
}

int64_t DataLoader::batches_per_epoch() const {
  return (epoch_samples() + options_.batch_size - 1) / options_.batch_size;
}

bool DataLoader::epoch_done() const {
  return position_.index >= epoch_samples();
}

void DataLoader::compute_order() {
  if (options_.shuffle) {
    order_ = rng_.split(static_cast<uint64_t>(position_.epoch)).permutation(n_);
  } else {
    order_.resize(static_cast<size_t>(n_));
    std::iota(order_.begin(), order_.end(), int64_t{0});
  }
}

void DataLoader::start_epoch(int64_t epoch) {
  if (epoch < 0) {
    throw std::invalid_argument("DataLoader::start_epoch: epoch is " + std::to_string(epoch) +
                                "; expected >= 0");
  }
  position_.epoch = epoch;
  position_.index = 0;
  compute_order();
}

void DataLoader::set_position(const DataLoaderPosition& position) {
  if (position.epoch < 0 || position.index < 0 || position.index > epoch_samples()) {
    throw std::invalid_argument(
        "DataLoader::set_position: epoch " + std::to_string(position.epoch) + ", index " +
        std::to_string(position.index) + "; expected epoch >= 0 and index in 0.." +
        std::to_string(epoch_samples()));
  }
  rng_.set_state(position.rng_state);
  position_ = position;
  compute_order();
}

Batch DataLoader::next_batch() {
  if (epoch_done()) start_epoch(position_.epoch + 1);
  const int64_t count = std::min(options_.batch_size, epoch_samples() - position_.index);
  Batch batch;
  auto first = order_.begin() + position_.index;
  batch.indices.assign(first, first + count);
  batch.data = gather_rows(data_, batch.indices);
  if (!labels_.empty()) {
    for (int64_t i : batch.indices) batch.labels.push_back(labels_[static_cast<size_t>(i)]);
  }
  position_.index += count;
  return batch;
}

void DataLoader::Iterator::advance() {
  done_ = loader_->epoch_done();
  if (!done_) batch_ = loader_->next_batch();
}

DataLoader::Iterator DataLoader::begin() {
  if (epoch_done()) start_epoch(position_.epoch + 1);
  return Iterator(this);
}

Tensor gather_rows(const Tensor& data, const std::vector<int64_t>& indices) {
  if (!data.defined() || data.ndim() < 1) {
    throw std::invalid_argument("gather_rows: data must have at least one dimension");
  }
  const Tensor src = data.contiguous();
  const int64_t n = src.size(0);
  const int64_t row = n > 0 ? src.numel() / n : 0;
  std::vector<int64_t> dims = src.shape().vec();
  dims[0] = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::empty(Shape(dims));
  for (size_t k = 0; k < indices.size(); ++k) {
    if (indices[k] < 0 || indices[k] >= n) {
      throw std::invalid_argument("gather_rows: index " + std::to_string(indices[k]) +
                                  " is outside 0.." + std::to_string(n - 1));
    }
    std::memcpy(out.data() + static_cast<int64_t>(k) * row, src.data() + indices[k] * row,
                static_cast<size_t>(row) * sizeof(float));
  }
  return out;
}

std::vector<std::vector<int64_t>> split_indices(int64_t n, const std::vector<int64_t>& counts,
                                                Rng& rng) {
  int64_t total = 0;
  for (int64_t c : counts) {
    if (c < 0) {
      throw std::invalid_argument("split_indices: count " + std::to_string(c) + " is negative");
    }
    total += c;
  }
  if (total > n) {
    throw std::invalid_argument("split_indices: counts sum to " + std::to_string(total) +
                                " but there are only " + std::to_string(n) + " samples");
  }
  const std::vector<int64_t> permutation = rng.permutation(n);
  std::vector<std::vector<int64_t>> parts;
  auto next = permutation.begin();
  for (int64_t c : counts) {
    std::vector<int64_t> part(next, next + c);
    std::sort(part.begin(), part.end());
    parts.push_back(std::move(part));
    next += c;
  }
  return parts;
}

std::vector<int64_t> counts_from_fractions(int64_t n, const std::vector<double>& fractions) {
  double sum = 0;
  for (double f : fractions) {
    if (!(f >= 0 && f <= 1)) {
      throw std::invalid_argument("counts_from_fractions: fraction " + std::to_string(f) +
                                  " is outside [0, 1]");
    }
    sum += f;
  }
  if (fractions.empty() || std::fabs(sum - 1.0) > 1e-9) {
    throw std::invalid_argument("counts_from_fractions: fractions sum to " + std::to_string(sum) +
                                "; expected 1");
  }
  std::vector<int64_t> counts;
  std::vector<double> remainders;
  int64_t assigned = 0;
  for (double f : fractions) {
    double exact = f * static_cast<double>(n);
    counts.push_back(static_cast<int64_t>(std::floor(exact)));
    remainders.push_back(exact - std::floor(exact));
    assigned += counts.back();
  }
  std::vector<size_t> order(fractions.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return remainders[a] > remainders[b]; });
  for (size_t k = 0; assigned < n; ++k, ++assigned) ++counts[order[k % order.size()]];
  return counts;
}

std::vector<Tensor> split_by_counts(const Tensor& data, const std::vector<int64_t>& counts,
                                    Rng& rng) {
  if (!data.defined() || data.ndim() < 1) {
    throw std::invalid_argument("split_by_counts: data must have at least one dimension");
  }
  std::vector<Tensor> parts;
  for (const std::vector<int64_t>& indices : split_indices(data.size(0), counts, rng))
    parts.push_back(gather_rows(data, indices));
  return parts;
}

std::vector<Tensor> split_by_fractions(const Tensor& data, const std::vector<double>& fractions,
                                       Rng& rng) {
  if (!data.defined() || data.ndim() < 1) {
    throw std::invalid_argument("split_by_fractions: data must have at least one dimension");
  }
  return split_by_counts(data, counts_from_fractions(data.size(0), fractions), rng);
}

}  // namespace dpm::datasets
