#include "autograd/kernels/slab.hpp"

#include <algorithm>
#include <cstring>

#include "autograd/kernels/elementwise.hpp"

namespace dpm {
namespace {

// The planes of one outer index are contiguous in both tensors: one run of length * inner.
template <typename RunFn>
void for_each_run(float* dst, const float* src, const SlabGeometry& g, RunFn&& run) {
  int64_t run_length = g.length * g.inner;
  if (run_length == 0) return;
  int64_t grain = std::max<int64_t>(1, kElementwiseGrain / run_length);
  parallel_for(g.outer, grain, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o)
      run(dst + (o * g.dst_extent + g.dst_start) * g.inner,
          src + (o * g.src_extent + g.src_start) * g.inner, run_length);
  });
}

}  // namespace

void slab_copy(float* dst, const float* src, const SlabGeometry& g) {
  for_each_run(dst, src, g, [](float* d, const float* s, int64_t n) {
    std::memcpy(d, s, static_cast<size_t>(n) * sizeof(float));
  });
}

void slab_accumulate(float* dst, const float* src, const SlabGeometry& g) {
  for_each_run(dst, src, g, [](float* d, const float* s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) d[i] += s[i];
  });
}

}  // namespace dpm
