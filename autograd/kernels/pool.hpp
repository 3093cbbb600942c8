#pragma once
// Average pooling (kernel = stride = factor, remainder rows/columns dropped) and nearest-neighbour
// upsampling, on planes [N, H, W] with N = batch * channels. A 1-D op is the case H = 1,
// factor_h = 1. Backward kernels accumulate (+=) into dinp.
// Threads: oneTBB over planes (each plane written by one chunk).
#include <cstdint>

namespace dpm {

struct PoolGeometry {
  int64_t planes = 1;  // batch * channels
  int64_t in_h = 1, in_w = 1;
  int64_t factor_h = 1, factor_w = 1;
};

// out [N, H/fh, W/fw] = mean over each fh x fw window of inp [N, H, W].
void avg_pool2d_forward(float* out, const float* inp, const PoolGeometry& g);
// dinp [N, H, W] += dout [N, H/fh, W/fw] / (fh fw) over each window (dropped cells get nothing).
void avg_pool2d_backward(float* dinp, const float* dout, const PoolGeometry& g);

// out [N, H*fh, W*fw] with out[n, i, j] = inp [N, H, W] at [n, i/fh, j/fw].
void upsample_nearest2d_forward(float* out, const float* inp, const PoolGeometry& g);
// dinp [N, H, W] += the sum of dout [N, H*fh, W*fw] over each element's fh x fw copies.
void upsample_nearest2d_backward(float* dinp, const float* dout, const PoolGeometry& g);

}  // namespace dpm
