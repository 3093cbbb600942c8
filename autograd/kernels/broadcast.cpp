#include "autograd/kernels/broadcast.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "autograd/kernels/elementwise.hpp"

namespace dpm {
namespace {

using Offsets = std::array<int64_t, 3>;

// Calls row(n, offsets) for every innermost row of g (n = g's last extent), offsets being the
// start of the row in each operand, in row-major order. The innermost loop is left to row so
// it can be specialised on the strides and vectorised.
template <typename RowFn>
void for_each_row(const BroadcastGeometry& g, Offsets offsets, RowFn&& row) {
  int last = g.ndim - 1;
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= g.extent[d];
  std::array<int64_t, kMaxDims> index{};
  for (int64_t r = 0; r < rows; ++r) {
    row(g.extent[last], offsets);
    for (int d = last - 1; d >= 0; --d) {
      if (++index[d] < g.extent[d]) {
        for (int k = 0; k < 3; ++k) offsets[k] += g.stride[k][d];
        break;
      }
      for (int k = 0; k < 3; ++k) offsets[k] -= g.stride[k][d] * (g.extent[d] - 1);
      index[d] = 0;
    }
  }
}

// for_each_row split over threads along dimension split_dim: each chunk takes a range of that
// dimension's indices, so when split_dim is not broadcast in the written operand, every written
// element belongs to exactly one chunk, and each chunk visits its elements in row-major order.
template <typename RowFn>
void parallel_rows(const BroadcastGeometry& g, int split_dim, RowFn&& row) {
  int64_t n = g.extent[split_dim];
  int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, g.numel() / n));
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    BroadcastGeometry part = g;
    part.extent[split_dim] = end - begin;
    Offsets offsets{};
    for (int k = 0; k < 3; ++k) offsets[k] = begin * g.stride[k][split_dim];
    for_each_row(part, offsets, row);
  });
}

// Calls f(j, a[j * sa], b[j * sb]) for j < n, with the dense and broadcast stride patterns
// spelled out so each becomes a simple vectorisable loop.
template <typename F>
inline void row_loop(int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, F&& f) {
  if (sa == 1 && sb == 1) {
    for (int64_t j = 0; j < n; ++j) f(j, a[j], b[j]);
  } else if (sa == 1 && sb == 0) {
    const float bv = *b;
    for (int64_t j = 0; j < n; ++j) f(j, a[j], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = *a;
    for (int64_t j = 0; j < n; ++j) f(j, av, b[j]);
  } else {
    for (int64_t j = 0; j < n; ++j) f(j, a[j * sa], b[j * sb]);
  }
}

// dst [full] (+)= f(src [full], a, b): the shared loop of the binary forward (assign, src unused)
// and backward (accumulate). Threads: oneTBB over the outermost dimension of the full tensor.
template <bool kAccumulate, typename F>
void binary_map(const BroadcastGeometry& g, float* dst, const float* src, const float* a,
                const float* b, F f) {
  if (g.numel() == 0) return;
  int last = g.ndim - 1;
  int64_t sa = g.stride[1][last], sb = g.stride[2][last];
  parallel_rows(g, 0, [&](int64_t n, const Offsets& off) {
    float* d = dst + off[0];
    const float* s = src ? src + off[0] : nullptr;
    row_loop(n, a + off[1], sa, b + off[2], sb, [d, s, &f](int64_t j, float x, float y) {
      if constexpr (kAccumulate) {
        d[j] += f(s[j], x, y);
      } else {
        d[j] = f(0.0f, x, y);
      }
    });
  });
}

}  // namespace

int64_t BroadcastGeometry::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= extent[d];
  return n;
}

BroadcastGeometry broadcast_geometry(const Shape& full, const Shape& a, const Shape& b) {
  const int n = full.ndim();
  const Shape* shapes[3] = {&full, &a, &b};
  std::array<std::array<int64_t, kMaxDims>, 3> strides{};
  for (int k = 0; k < 3; ++k) {
    const Shape& s = *shapes[k];
    int lead = n - s.ndim();
    if (lead < 0)
      throw std::invalid_argument("broadcast_geometry: shape " + s.str() +
                                  " has more dimensions than " + full.str());
    int64_t dense = 1;
    for (int d = n - 1; d >= 0; --d) {
      int64_t e = d >= lead ? s[d - lead] : 1;
      if (e != full[d] && e != 1)
        throw std::invalid_argument("broadcast_geometry: shape " + s.str() +
                                    " does not broadcast to " + full.str());
      strides[k][d] = e == 1 ? 0 : dense;
      dense *= e;
    }
  }
  // Drop extent-1 dimensions and merge a dimension into the previous one when every operand
  // steps through both as through one (dense in both, or broadcast in both).
  BroadcastGeometry g;
  g.ndim = 0;
  for (int d = 0; d < n; ++d) {
    if (full[d] == 1) continue;
    int p = g.ndim - 1;
    bool mergeable = p >= 0;
    for (int k = 0; k < 3 && mergeable; ++k) mergeable = g.stride[k][p] == strides[k][d] * full[d];
    if (mergeable) {
      g.extent[p] *= full[d];
      for (int k = 0; k < 3; ++k) g.stride[k][p] = strides[k][d];
    } else {
      g.extent[g.ndim] = full[d];
      for (int k = 0; k < 3; ++k) g.stride[k][g.ndim] = strides[k][d];
      ++g.ndim;
    }
  }
  if (g.ndim == 0) {  // a single element
    g.ndim = 1;
    g.extent[0] = 1;
  }
  return g;
}

void binary_forward(BinaryOp op, float* out, const float* a, const float* b,
                    const BroadcastGeometry& g) {
  auto map = [&](auto f) { binary_map<false>(g, out, nullptr, a, b, f); };
  switch (op) {
    case BinaryOp::add:
      map([](float, float x, float y) { return x + y; });
      break;
    case BinaryOp::sub:
      map([](float, float x, float y) { return x - y; });
      break;
    case BinaryOp::mul:
      map([](float, float x, float y) { return x * y; });
      break;
    case BinaryOp::div:
      map([](float, float x, float y) { return x / y; });
      break;
  }
}

void binary_backward(BinaryOp op, float* da, float* db, const float* dout, const float* a,
                     const float* b, const BroadcastGeometry& g) {
  // f(grad, x, y) is the contribution of the output gradient at operands x = a, y = b.
  auto accumulate = [&](float* d, auto f) {
    if (d) binary_map<true>(g, d, dout, a, b, f);
  };
  switch (op) {
    case BinaryOp::add:
      accumulate(da, [](float gr, float, float) { return gr; });
      accumulate(db, [](float gr, float, float) { return gr; });
      break;
    case BinaryOp::sub:
      accumulate(da, [](float gr, float, float) { return gr; });
      accumulate(db, [](float gr, float, float) { return -gr; });
      break;
    case BinaryOp::mul:
      accumulate(da, [](float gr, float, float y) { return gr * y; });
      accumulate(db, [](float gr, float x, float) { return gr * x; });
      break;
    case BinaryOp::div:
      accumulate(da, [](float gr, float, float y) { return gr / y; });
      accumulate(db, [](float gr, float x, float y) { return -gr * x / (y * y); });
      break;
  }
}

void sum_reduce(float* out, const float* inp, double scale, const BroadcastGeometry& g) {
  int64_t out_numel = 1;
  int split_dim = -1;  // the outermost kept dimension: chunks over it write disjoint outputs
  for (int d = 0; d < g.ndim; ++d) {
    if (g.stride[2][d] == 0) continue;
    out_numel *= g.extent[d];
    if (split_dim < 0) split_dim = d;
  }
  std::vector<double> acc(static_cast<size_t>(out_numel), 0.0);
  double* pacc = acc.data();
  int64_t s2 = g.stride[2][g.ndim - 1];
  auto row = [&](int64_t n, const Offsets& off) {
    const float* x = inp + off[0];
    double* a = pacc + off[2];
    if (s2 == 0) {
      double s = *a;
      for (int64_t j = 0; j < n; ++j) s += x[j];
      *a = s;
    } else {
      for (int64_t j = 0; j < n; ++j) a[j * s2] += x[j];
    }
  };
  // Threads: oneTBB over a kept dimension; a full reduction runs in one fixed sequence.
  if (g.numel() > 0) {
    if (split_dim < 0) {
      for_each_row(g, Offsets{}, row);
    } else {
      parallel_rows(g, split_dim, row);
    }
  }
  for (int64_t i = 0; i < out_numel; ++i)
    out[i] = static_cast<float>(acc[static_cast<size_t>(i)] * scale);
}

void broadcast_accumulate(float* dinp, const float* dout, float scale, const BroadcastGeometry& g) {
  if (g.numel() == 0) return;
  int64_t s2 = g.stride[2][g.ndim - 1];
  // Threads: oneTBB over the outermost dimension of dinp.
  parallel_rows(g, 0, [&](int64_t n, const Offsets& off) {
    float* d = dinp + off[0];
    const float* src = dout + off[2];
    if (s2 == 0) {
      const float v = scale * *src;
      for (int64_t j = 0; j < n; ++j) d[j] += v;
    } else {
      for (int64_t j = 0; j < n; ++j) d[j] += scale * src[j * s2];
    }
  });
}

}  // namespace dpm
