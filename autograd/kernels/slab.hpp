#pragma once
// Copies of a range along one dimension, for concat / split / slice. Both tensors are dense and
// viewed as [outer, extent, inner] around that dimension (their extents may differ).
// Threads: oneTBB over `outer` (each destination row written by one chunk).
#include <cstdint>

namespace dpm {

struct SlabGeometry {
  int64_t outer = 1, inner = 1;
  int64_t length = 0;                     // planes copied along the dimension
  int64_t dst_extent = 0, dst_start = 0;  // dst [outer, dst_extent, inner]
  int64_t src_extent = 0, src_start = 0;  // src [outer, src_extent, inner]
};

// dst[o, dst_start + d, i] = src[o, src_start + d, i] for d < length.
void slab_copy(float* dst, const float* src, const SlabGeometry& g);
// dst[o, dst_start + d, i] += src[o, src_start + d, i]: the backward of slab_copy.
void slab_accumulate(float* dst, const float* src, const SlabGeometry& g);

}  // namespace dpm
