#include "autograd/kernels/conv.hpp"

#include <algorithm>
#include <stdexcept>

#include "autograd/kernels/elementwise.hpp"
#include "autograd/kernels/gemm.hpp"
#include "autograd/tensor.hpp"
#include "autograd/threading.hpp"

// Threading owner: oneTBB. The batch is cut into blocks of whole samples and the blocks into at
// most kMaxSlots slots; parallel_for runs over the slots, and every GEMM inside is single-threaded
// (with one slot, e.g. batch 1, parallel_for runs inline and OpenBLAS threads that one GEMM).
// The cut depends only on the geometry, never on the thread count, so the per-slot weight
// gradients and their fixed-order double sum are bitwise deterministic: for any thread count when
// there are several slots, for a fixed one when OpenBLAS threads the single slot's GEMMs.

namespace dpm {
namespace {

// Small outputs (7x7, length 8) make skinny GEMMs; batching samples side by side in the GEMM's
// N dimension up to this many columns keeps OpenBLAS efficient.
constexpr int64_t kTargetColumns = 256;
constexpr int64_t kMaxSlots = 16;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

bool is_1d(const ConvGeometry& g) {
  return g.in_h == 1 && g.kernel_h == 1 && g.stride_h == 1 && g.pad_h == 0;
}

// "HxW", or just "W" for a 1-D geometry.
std::string extent(const ConvGeometry& g, int64_t h, int64_t w) {
  return is_1d(g) ? std::to_string(w) : std::to_string(h) + "x" + std::to_string(w);
}

struct BatchPlan {
  int64_t plane;              // OH * OW: one sample's GEMM columns
  int64_t patch;              // Ci * KH * KW: the GEMM's inner dimension
  int64_t samples_per_block;  // samples side by side in one GEMM
  int64_t blocks, slots;

  explicit BatchPlan(const ConvGeometry& g)
      : plane(g.out_h() * g.out_w()),
        patch(g.in_channels * g.kernel_h * g.kernel_w),
        samples_per_block(std::min(g.batch, ceil_div(kTargetColumns, plane))),
        blocks(ceil_div(g.batch, samples_per_block)),
        slots(std::min(blocks, kMaxSlots)) {}

  int64_t block_columns() const { return samples_per_block * plane; }

  // Calls body(slot, first_sample, samples) for every block, slots in parallel, each slot's
  // blocks in order. Scratch is allocated once per slot by make_scratch().
  template <typename MakeScratch, typename Body>
  void run(int64_t batch, MakeScratch make_scratch, Body body) const {
    parallel_for(slots, 1, [&](int64_t slot_begin, int64_t slot_end) {
      auto scratch = make_scratch();
      for (int64_t slot = slot_begin; slot < slot_end; ++slot) {
        for (int64_t block = slot * blocks / slots; block < (slot + 1) * blocks / slots; ++block) {
          int64_t first = block * samples_per_block;
          body(scratch, slot, first, std::min(samples_per_block, batch - first));
        }
      }
    });
  }
};

// Walks one sample's patch matrix col [Ci*KH*KW, OH*OW] (row stride ld) against its image
// img [Ci, H, W]: take(col_entry, image_entry) for positions read from the image (replicate
// padding clamps to the edge), pad(col_entry) for zero-padded ones. im2col and col2im are this
// same walk with the data moving in opposite directions.
template <typename Col, typename Img, typename Take, typename Pad>
void walk_patches(const ConvGeometry& g, Col* col, int64_t ld, Img* img, Take take, Pad pad) {
  const int64_t oh_n = g.out_h(), ow_n = g.out_w();
  const int64_t sw = g.stride_w;
  const bool zeros = g.padding == PaddingMode::zeros;
  // First output column whose input column iw = ow * sw - pad_w + kw is >= x.
  auto first_ow_reaching = [&](int64_t x) {
    return std::clamp<int64_t>(x <= 0 ? 0 : ceil_div(x, sw), 0, ow_n);
  };
  // Channels innermost: the in-image column range [lo, hi) and the input row depend only on the
  // kernel position and the output row. 1-D rows are short (8 to 64 columns), and recomputing
  // them for every channel cost as much as the copy (im2col: 32% of the denoiser's time, then 15%).
  for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const int64_t offset = kw - g.pad_w;
      const int64_t lo = first_ow_reaching(-offset);
      const int64_t hi = std::max(lo, first_ow_reaching(g.in_w - offset));
      for (int64_t oh = 0; oh < oh_n; ++oh) {
        const int64_t ih = oh * g.stride_h - g.pad_h + kh;
        const bool padded_row = zeros && (ih < 0 || ih >= g.in_h);
        const int64_t ih_read = std::clamp<int64_t>(ih, 0, g.in_h - 1);
        for (int64_t ci = 0; ci < g.in_channels; ++ci) {
          Col* c = col + ((ci * g.kernel_h + kh) * g.kernel_w + kw) * ld + oh * ow_n;
          if (padded_row) {
            for (int64_t ow = 0; ow < ow_n; ++ow) pad(c[ow]);
            continue;
          }
          // Left edge, inside, right edge: col2im's sums into the edge pixels keep this order.
          Img* src = img + (ci * g.in_h + ih_read) * g.in_w;
          for (int64_t ow = 0; ow < lo; ++ow) zeros ? pad(c[ow]) : take(c[ow], src[0]);
          if (sw == 1) {
            Img* shifted = src + offset;
            for (int64_t ow = lo; ow < hi; ++ow) take(c[ow], shifted[ow]);
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) take(c[ow], src[ow * sw + offset]);
          }
          for (int64_t ow = hi; ow < ow_n; ++ow) zeros ? pad(c[ow]) : take(c[ow], src[g.in_w - 1]);
        }
      }
    }
  }
}

// Stride 1, zero padding and an output as wide as the input (2 pad_w = KW - 1: the U-Nets' 3-wide
// convolutions): a kernel position's row of the patch matrix is the image plane shifted by
// (kh - pad_h) W + (kw - pad_w), so it is one contiguous run instead of a run per output row.
bool is_shifted_plane(const ConvGeometry& g) {
  return g.padding == PaddingMode::zeros && g.stride_h == 1 && g.stride_w == 1 &&
         g.out_w() == g.in_w;
}

// One kernel position of a shifted-plane geometry: output rows [row_lo, row_hi) read input rows
// inside the image, and in each of them output columns [col_lo, col_hi) read inside columns.
struct PlaneShift {
  int64_t row_lo, row_hi, col_lo, col_hi;
  int64_t shift;  // input index - output index, both flat over [H, W]

  PlaneShift(const ConvGeometry& g, int64_t kh, int64_t kw) {
    const int64_t dh = kh - g.pad_h, dw = kw - g.pad_w;
    row_lo = std::clamp<int64_t>(-dh, 0, g.out_h());
    row_hi = std::clamp<int64_t>(g.in_h - dh, row_lo, g.out_h());
    col_lo = std::clamp<int64_t>(-dw, 0, g.in_w);
    col_hi = std::clamp<int64_t>(g.in_w - dw, col_lo, g.in_w);
    shift = dh * g.in_w + dw;
  }
};

// im2col of a shifted-plane geometry: per kernel position and channel one copy of the in-image
// run (which also copies the neighbouring row's pixels into the edge columns), then the padding
// and those edge columns zeroed. Kernel positions outermost: their bookkeeping is per position.
void im2col_shifted(const ConvGeometry& g, float* col, int64_t ld, const float* img) {
  const int64_t w = g.in_w, plane_in = g.in_h * w, plane_out = g.out_h() * w;
  for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const PlaneShift s(g, kh, kw);
      const bool inside = s.row_lo < s.row_hi;  // else the kernel row lies wholly in the padding
      const int64_t begin = inside ? s.row_lo * w + s.col_lo : 0;
      const int64_t end = inside ? (s.row_hi - 1) * w + s.col_hi : 0;
      for (int64_t ci = 0; ci < g.in_channels; ++ci) {
        float* c = col + ((ci * g.kernel_h + kh) * g.kernel_w + kw) * ld;
        const float* x = img + ci * plane_in;
        for (int64_t i = 0; i < begin; ++i) c[i] = 0.0f;
        for (int64_t i = begin; i < end; ++i) c[i] = x[i + s.shift];
        for (int64_t i = end; i < plane_out; ++i) c[i] = 0.0f;
        // Edge columns inside the run: left of rows after its first, right of rows before its
        // last (at most pad_w each).
        for (int64_t oh = s.row_lo + 1; oh < s.row_hi; ++oh) {
          for (int64_t ow = 0; ow < s.col_lo; ++ow) c[oh * w + ow] = 0.0f;
          for (int64_t ow = s.col_hi; ow < w; ++ow) c[(oh - 1) * w + ow] = 0.0f;
        }
      }
    }
  }
}

// col2im of a shifted-plane geometry: a pixel still receives its kernel positions' terms in
// (kh, kw) order, as walk_patches adds them, so the sums are the same bits.
void col2im_shifted(const ConvGeometry& g, const float* col, int64_t ld, float* img) {
  const int64_t w = g.in_w, plane_in = g.in_h * w;
  for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const PlaneShift s(g, kh, kw);
      // Whole rows are one run; otherwise the edge columns must not spill into the next row.
      const bool whole_rows = s.col_lo == 0 && s.col_hi == w;
      const int64_t run = whole_rows ? (s.row_hi - s.row_lo) * w : s.col_hi - s.col_lo;
      const int64_t last_row = whole_rows ? std::min(s.row_lo + 1, s.row_hi) : s.row_hi;
      for (int64_t ci = 0; ci < g.in_channels; ++ci) {
        const float* c = col + ((ci * g.kernel_h + kh) * g.kernel_w + kw) * ld;
        float* x = img + ci * plane_in;
        for (int64_t oh = s.row_lo; oh < last_row; ++oh) {
          const int64_t first = oh * w + s.col_lo;
          for (int64_t i = first; i < first + run; ++i) x[i + s.shift] += c[i];
        }
      }
    }
  }
}

void im2col(const ConvGeometry& g, float* col, int64_t ld, const float* img) {
  if (is_shifted_plane(g)) return im2col_shifted(g, col, ld, img);
  walk_patches(
      g, col, ld, img, [](float& c, const float& x) { c = x; }, [](float& c) { c = 0.0f; });
}

// Accumulates: img += the adjoint of im2col applied to col.
void col2im(const ConvGeometry& g, const float* col, int64_t ld, float* img) {
  if (is_shifted_plane(g)) return col2im_shifted(g, col, ld, img);
  walk_patches(
      g, col, ld, img, [](const float& c, float& x) { x += c; }, [](const float&) {});
}

Tensor scratch(int64_t n) {
  return Tensor::empty(Shape{n});
}

}  // namespace

void ConvGeometry::validate(const char* caller) const {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(std::string(caller) + ": " + what + " (" + str() + ")");
  };
  if (batch < 1 || in_channels < 1 || out_channels < 1)
    fail("batch and channel counts must be positive");
  if (in_h < 1 || in_w < 1) fail("input size must be positive");
  if (kernel_h < 1 || kernel_w < 1) fail("kernel size must be positive");
  if (stride_h < 1 || stride_w < 1) fail("stride must be at least 1");
  if (pad_h < 0 || pad_w < 0) fail("padding must be non-negative");
  if (kernel_h > in_h + 2 * pad_h || kernel_w > in_w + 2 * pad_w)
    fail("kernel " + extent(*this, kernel_h, kernel_w) + " is larger than the padded input " +
         extent(*this, in_h + 2 * pad_h, in_w + 2 * pad_w));
  if (padding == PaddingMode::replicate && (pad_h > in_h || pad_w > in_w))
    fail("replicate padding " + extent(*this, pad_h, pad_w) + " is wider than the input " +
         extent(*this, in_h, in_w));
}

std::string ConvGeometry::str() const {
  return "batch " + std::to_string(batch) + ", channels " + std::to_string(in_channels) + " -> " +
         std::to_string(out_channels) + ", input " + extent(*this, in_h, in_w) + ", kernel " +
         extent(*this, kernel_h, kernel_w) + ", stride " + extent(*this, stride_h, stride_w) +
         ", padding " + extent(*this, pad_h, pad_w) +
         (padding == PaddingMode::zeros ? " zeros" : " replicate");
}

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const ConvGeometry& g) {
  const BatchPlan plan(g);
  const int64_t in_sample = g.in_channels * g.in_h * g.in_w;
  const int64_t co_n = g.out_channels, plane = plan.plane;
  auto make_scratch = [&] {
    return std::pair{scratch(plan.patch * plan.block_columns()),
                     scratch(co_n * plan.block_columns())};
  };
  plan.run(g.batch, make_scratch, [&](auto& s, int64_t, int64_t first, int64_t count) {
    auto& [col, block_out] = s;
    const int64_t ld = count * plane;
    for (int64_t j = 0; j < count; ++j)
      im2col(g, col.data() + j * plane, ld, inp + (first + j) * in_sample);
    // A single sample's [Co, P] block is its slice of out: the GEMM writes there directly.
    float* gemm_out = count == 1 ? out + first * co_n * plane : block_out.data();
    // gemm_out [Co, count*P] = weight [Co, patch] col [patch, count*P]
    sgemm_ld(false, false, co_n, ld, plan.patch, 1.0f, weight, plan.patch, col.data(), ld, 0.0f,
             gemm_out, ld);
    if (count == 1 && !bias) return;  // already in place, nothing to add
    for (int64_t j = 0; j < count; ++j) {
      for (int64_t co = 0; co < co_n; ++co) {
        const float* src = gemm_out + co * ld + j * plane;
        float* dst = out + ((first + j) * co_n + co) * plane;
        const float b = bias ? bias[co] : 0.0f;
        for (int64_t p = 0; p < plane; ++p) dst[p] = src[p] + b;
      }
    }
  });
}

namespace {

// The adjoint of a stride-1 zero-padded convolution is itself one: dout [Co, OH, OW] convolved
// with the weight flipped in space and transposed in channels ([Ci, Co, KH, KW]), padded by
// K - 1 - pad, gives [Ci, H, W]. Run as a forward pass its GEMM has the long inner dimension
// Co KH KW and writes [Ci, H W]; weight^T dout had the inner dimension Co and wrote a
// [Ci KH KW, OH OW] patch matrix for col2im to scatter back.
bool has_convolution_adjoint(const ConvGeometry& g) {
  return g.padding == PaddingMode::zeros && g.stride_h == 1 && g.stride_w == 1 &&
         g.pad_h < g.kernel_h && g.pad_w < g.kernel_w;
}

// Accumulates dinp [B, Ci, H, W] += the adjoint of the convolution applied to dout.
void conv2d_adjoint_accumulate(float* dinp, const float* dout, const float* weight,
                               const ConvGeometry& g) {
  ConvGeometry adjoint = g;
  adjoint.in_channels = g.out_channels;
  adjoint.out_channels = g.in_channels;
  adjoint.in_h = g.out_h();
  adjoint.in_w = g.out_w();
  adjoint.pad_h = g.kernel_h - 1 - g.pad_h;
  adjoint.pad_w = g.kernel_w - 1 - g.pad_w;
  // Flipping both kernel axes reverses the flat tap index kh KW + kw.
  const int64_t taps = g.kernel_h * g.kernel_w, ci_n = g.in_channels, co_n = g.out_channels;
  Tensor flipped = scratch(ci_n * co_n * taps);
  for (int64_t ci = 0; ci < ci_n; ++ci)
    for (int64_t co = 0; co < co_n; ++co)
      for (int64_t t = 0; t < taps; ++t)
        flipped.data()[(ci * co_n + co) * taps + t] =
            weight[(co * ci_n + ci) * taps + taps - 1 - t];
  const int64_t n = g.batch * ci_n * g.in_h * g.in_w;
  Tensor result = scratch(n);
  conv2d_forward(result.data(), dout, flipped.data(), nullptr, adjoint);
  const float* r = result.data();
  parallel_map(n, [&](int64_t i) { dinp[i] += r[i]; });
}

}  // namespace

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const ConvGeometry& g) {
  if (dinp && has_convolution_adjoint(g)) {
    conv2d_adjoint_accumulate(dinp, dout, weight, g);
    dinp = nullptr;  // done; the patch-matrix path below computes the rest
  }
  const BatchPlan plan(g);
  const int64_t in_sample = g.in_channels * g.in_h * g.in_w;
  const int64_t co_n = g.out_channels, plane = plan.plane;
  const int64_t weight_numel = co_n * plan.patch;

  if (dbias) {
    // One channel per index, summed over (batch, position) in double in a fixed order.
    parallel_for(co_n, std::max<int64_t>(1, 16384 / (g.batch * plane)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t co = lo; co < hi; ++co) {
                     double sum = 0.0;
                     for (int64_t b = 0; b < g.batch; ++b) {
                       const float* src = dout + (b * co_n + co) * plane;
                       for (int64_t p = 0; p < plane; ++p) sum += src[p];
                     }
                     dbias[co] += static_cast<float>(sum);
                   }
                 });
  }
  if (!dinp && !dweight) return;

  // Each slot's weight gradient [Co, patch], summed over the slots afterwards.
  Tensor slot_dweight = dweight ? Tensor::zeros(Shape{plan.slots, weight_numel}) : Tensor();
  auto make_scratch = [&] {
    return std::pair{scratch(plan.patch * plan.block_columns()),
                     scratch(co_n * plan.block_columns())};
  };
  plan.run(g.batch, make_scratch, [&](auto& s, int64_t slot, int64_t first, int64_t count) {
    auto& [col, block_dout_scratch] = s;
    const int64_t ld = count * plane;
    // A single sample's [Co, P] block is its slice of dout as it is; several are gathered.
    const float* block_dout = dout + first * co_n * plane;
    if (count > 1) {
      for (int64_t j = 0; j < count; ++j)
        for (int64_t co = 0; co < co_n; ++co)
          std::copy_n(dout + ((first + j) * co_n + co) * plane, plane,
                      block_dout_scratch.data() + co * ld + j * plane);
      block_dout = block_dout_scratch.data();
    }
    if (dweight) {
      for (int64_t j = 0; j < count; ++j)
        im2col(g, col.data() + j * plane, ld, inp + (first + j) * in_sample);
      // slot_dweight [Co, patch] += block_dout [Co, count*P] col^T [count*P, patch]
      sgemm_ld(false, true, co_n, plan.patch, ld, 1.0f, block_dout, ld, col.data(), ld, 1.0f,
               slot_dweight.data() + slot * weight_numel, plan.patch);
    }
    if (dinp) {
      // col [patch, count*P] = weight^T [patch, Co] block_dout [Co, count*P], then scattered back.
      sgemm_ld(true, false, plan.patch, ld, co_n, 1.0f, weight, plan.patch, block_dout, ld, 0.0f,
               col.data(), ld);
      for (int64_t j = 0; j < count; ++j)
        col2im(g, col.data() + j * plane, ld, dinp + (first + j) * in_sample);
    }
  });

  if (dweight) {
    const float* partial = slot_dweight.data();
    parallel_for(weight_numel, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        double sum = 0.0;
        for (int64_t slot = 0; slot < plan.slots; ++slot) sum += partial[slot * weight_numel + i];
        dweight[i] += static_cast<float>(sum);
      }
    });
  }
}

void conv2d_backward_data(float* dinp, const float* dout, const float* weight,
                          const ConvGeometry& g) {
  conv2d_backward(dinp, nullptr, nullptr, dout, nullptr, weight, g);
}

}  // namespace dpm
