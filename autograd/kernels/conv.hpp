#pragma once
// 2-D convolution kernels on raw pointers (a 1-D conv is the case H = KH = 1, pad_h = 0).
// Forward via im2col + sgemm; backward accumulates (+=) into the input gradients.
// Threads: oneTBB over blocks of samples, single-threaded GEMMs inside (see conv.cpp). Results,
// the batch-summed weight and bias gradients included, are bitwise reproducible for a fixed thread
// count, and the same for any thread count unless the whole batch is one block (small batches),
// whose GEMMs OpenBLAS threads itself.
#include <cstdint>
#include <string>

namespace dpm {

enum class PaddingMode { zeros, replicate };

struct ConvGeometry {
  int64_t batch = 1, in_channels = 1, out_channels = 1;
  int64_t in_h = 1, in_w = 1;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  PaddingMode padding = PaddingMode::zeros;

  int64_t out_h() const { return (in_h + 2 * pad_h - kernel_h) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - kernel_w) / stride_w + 1; }
  // Throws std::invalid_argument describing the first inconsistency (empty output, bad stride,
  // replicate padding wider than the input, ...).
  void validate(const char* caller) const;
  std::string str() const;
};

// out [B, Co, OH, OW] = conv(inp [B, Ci, H, W], weight [Co, Ci, KH, KW]) + bias [Co] (may be null).
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const ConvGeometry& g);

// Accumulates: dinp [B, Ci, H, W] += d/dinp, dweight [Co, Ci, KH, KW] += d/dweight,
// dbias [Co] += d/dbias. Any of the three may be null (not needed).
void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const ConvGeometry& g);

// The adjoint (transposed conv, backward-data) alone:
// dinp [B, Ci, H, W] += T^T dout [B, Co, OH, OW].
void conv2d_backward_data(float* dinp, const float* dout, const float* weight,
                          const ConvGeometry& g);

}  // namespace dpm
