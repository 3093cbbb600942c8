#include "diffusion/per_sample.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "autograd/threading.hpp"

namespace dpm::diffusion {
namespace {

// Samples per parallel chunk: about 64k elements, so small batches run inline.
int64_t sample_grain(int64_t row_size) {
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, row_size));
}

}  // namespace

int64_t batch_size_of(const Tensor& x, const char* caller, const char* what) {
  if (!x.defined() || x.ndim() < 1 || x.size(0) < 1)
    throw std::invalid_argument(std::string(caller) + ": " + what +
                                " must be a batch [B, ...] with B >= 1, got " +
                                (x.defined() ? x.shape().str() : std::string("undefined")));
  return x.size(0);
}

void require_per_sample(const Tensor& x, int64_t count, const char* caller, const char* what) {
  if (batch_size_of(x, caller, what) != count)
    throw std::invalid_argument(std::string(caller) + ": " + what + " has " +
                                std::to_string(x.size(0)) + " samples, expected " +
                                std::to_string(count));
}

std::vector<double> abar_at(const Schedule& schedule, const std::vector<int64_t>& steps,
                            const char* caller) {
  std::vector<double> abar(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i] < 1 || steps[i] > schedule.T())
      throw std::invalid_argument(std::string(caller) + ": step " + std::to_string(steps[i]) +
                                  " of sample " + std::to_string(i) + " outside 1.." +
                                  std::to_string(schedule.T()));
    abar[i] = schedule.abar(steps[i]);
  }
  return abar;
}

Tensor combine_per_sample(const std::vector<double>& a, const Tensor& x,
                          const std::vector<double>& b, const Tensor& y, const char* caller) {
  require_per_sample(x, static_cast<int64_t>(a.size()), caller, "first input");
  require_per_sample(y, static_cast<int64_t>(b.size()), caller, "second input");
  if (!(x.shape() == y.shape()))
    throw std::invalid_argument(std::string(caller) + ": inputs differ in shape, " +
                                x.shape().str() + " vs " + y.shape().str());
  Tensor xc = x.contiguous(), yc = y.contiguous();
  Tensor out = Tensor::empty(x.shape());
  const int64_t row = x.numel() / x.size(0);
  const float* px = xc.data();
  const float* py = yc.data();
  float* po = out.data();
  // oneTBB owns this loop: each chunk writes its own samples' rows.
  parallel_for(x.size(0), sample_grain(row), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double ai = a[static_cast<size_t>(i)], bi = b[static_cast<size_t>(i)];
      for (int64_t j = i * row; j < (i + 1) * row; ++j)
        po[j] =
            static_cast<float>(ai * static_cast<double>(px[j]) + bi * static_cast<double>(py[j]));
    }
  });
  return out;
}

Tensor per_sample_column(const std::vector<double>& coefficients, int ndim) {
  if (ndim < 1)
    throw std::invalid_argument("per_sample_column: ndim must be >= 1, got " +
                                std::to_string(ndim));
  std::vector<int64_t> dims(static_cast<size_t>(ndim), 1);
  dims[0] = static_cast<int64_t>(coefficients.size());
  Shape shape(dims);
  std::vector<float> values(coefficients.begin(), coefficients.end());
  return Tensor::from_vector(shape, values);
}

std::vector<double> squared_distance_per_sample(const Tensor& a, const Tensor& b,
                                                const char* caller) {
  const int64_t n = batch_size_of(a, caller, "first input");
  require_per_sample(b, n, caller, "second input");
  if (!(a.shape() == b.shape()))
    throw std::invalid_argument(std::string(caller) + ": inputs differ in shape, " +
                                a.shape().str() + " vs " + b.shape().str());
  Tensor ac = a.contiguous(), bc = b.contiguous();
  const int64_t row = a.numel() / n;
  std::vector<double> out(static_cast<size_t>(n));
  const float* pa = ac.data();
  const float* pb = bc.data();
  // oneTBB owns this loop: each sample's sum is one chunk's, in element order.
  parallel_for(n, sample_grain(row), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double sum = 0;
      for (int64_t j = i * row; j < (i + 1) * row; ++j) {
        const double d = static_cast<double>(pa[j]) - static_cast<double>(pb[j]);
        sum += d * d;
      }
      out[static_cast<size_t>(i)] = sum;
    }
  });
  return out;
}

}  // namespace dpm::diffusion
