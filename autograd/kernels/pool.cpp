#include "autograd/kernels/pool.hpp"

#include <algorithm>

#include "autograd/threading.hpp"

namespace dpm {
namespace {

// A coarse grid (pooled output, or upsampling input) and the fine grid it tiles with
// factor_h x factor_w windows; fine rows may extend past the last window (pooling's remainder).
struct Windows {
  int64_t coarse_h, coarse_w;
  int64_t fine_h, fine_w;
  int64_t fh, fw;
};

// Runs body(plane) over all planes in parallel, chunks of roughly 32k fine elements.
template <typename Body>
void for_each_plane(int64_t planes, const Windows& w, Body body) {
  const int64_t per_plane = std::max<int64_t>(1, w.fine_h * w.fine_w);
  parallel_for(planes, std::max<int64_t>(1, 32768 / per_plane), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) body(n);
  });
}

// coarse[n, i, j] (= or +=) scale * the sum over its window of fine, summed in double.
void sum_windows(float* coarse, const float* fine, int64_t planes, const Windows& w, double scale,
                 bool accumulate) {
  for_each_plane(planes, w, [&](int64_t n) {
    const float* f = fine + n * w.fine_h * w.fine_w;
    float* c = coarse + n * w.coarse_h * w.coarse_w;
    for (int64_t i = 0; i < w.coarse_h; ++i) {
      for (int64_t j = 0; j < w.coarse_w; ++j) {
        double sum = 0.0;
        for (int64_t a = 0; a < w.fh; ++a) {
          const float* row = f + (i * w.fh + a) * w.fine_w + j * w.fw;
          for (int64_t b = 0; b < w.fw; ++b) sum += row[b];
        }
        float value = static_cast<float>(sum * scale);
        float& dst = c[i * w.coarse_w + j];
        dst = accumulate ? dst + value : value;
      }
    }
  });
}

// Every fine cell of coarse[n, i, j]'s window (= or +=) scale * coarse[n, i, j].
void spread_windows(float* fine, const float* coarse, int64_t planes, const Windows& w, float scale,
                    bool accumulate) {
  for_each_plane(planes, w, [&](int64_t n) {
    float* f = fine + n * w.fine_h * w.fine_w;
    const float* c = coarse + n * w.coarse_h * w.coarse_w;
    for (int64_t i = 0; i < w.coarse_h; ++i) {
      for (int64_t a = 0; a < w.fh; ++a) {
        float* row = f + (i * w.fh + a) * w.fine_w;
        for (int64_t j = 0; j < w.coarse_w; ++j) {
          const float value = scale * c[i * w.coarse_w + j];
          for (int64_t b = 0; b < w.fw; ++b) {
            float& dst = row[j * w.fw + b];
            dst = accumulate ? dst + value : value;
          }
        }
      }
    }
  });
}

Windows pooling_windows(const PoolGeometry& g) {
  return {g.in_h / g.factor_h, g.in_w / g.factor_w, g.in_h, g.in_w, g.factor_h, g.factor_w};
}

Windows upsampling_windows(const PoolGeometry& g) {
  return {g.in_h, g.in_w, g.in_h * g.factor_h, g.in_w * g.factor_w, g.factor_h, g.factor_w};
}

double window_size(const PoolGeometry& g) {
  return static_cast<double>(g.factor_h * g.factor_w);
}

}  // namespace

void avg_pool2d_forward(float* out, const float* inp, const PoolGeometry& g) {
  sum_windows(out, inp, g.planes, pooling_windows(g), 1.0 / window_size(g), false);
}

void avg_pool2d_backward(float* dinp, const float* dout, const PoolGeometry& g) {
  spread_windows(dinp, dout, g.planes, pooling_windows(g), static_cast<float>(1.0 / window_size(g)),
                 true);
}

void upsample_nearest2d_forward(float* out, const float* inp, const PoolGeometry& g) {
  spread_windows(out, inp, g.planes, upsampling_windows(g), 1.0f, false);
}

void upsample_nearest2d_backward(float* dinp, const float* dout, const PoolGeometry& g) {
  sum_windows(dinp, dout, g.planes, upsampling_windows(g), 1.0, true);
}

}  // namespace dpm
