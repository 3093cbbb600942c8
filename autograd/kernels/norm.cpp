#include "autograd/kernels/norm.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/threading.hpp"

namespace dpm {
namespace {

// `count` runs of `length` contiguous floats, `stride` apart: one channel across the batch
// (batch norm), or one sample's group, run k being channel k of the group (group norm).
struct Runs {
  int64_t count, length, stride;
  int64_t numel() const { return count * length; }
};

// Affine parameters of run k: gamma[k * stride]. Stride 0 when all runs are one channel.
struct Affine {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  int64_t stride = 0;
  float scale(int64_t k) const { return gamma ? gamma[k * stride] : 1.0f; }
  float shift(int64_t k) const { return beta ? beta[k * stride] : 0.0f; }
};

// The affine parameters from channel `first` on (null stays null: no affine).
Affine affine_from(const float* gamma, const float* beta, int64_t first, int64_t stride) {
  return {gamma ? gamma + first : nullptr, beta ? beta + first : nullptr, stride};
}

struct Moments {
  double mean, var;  // var is biased
};

// Two passes (mean, then squared deviations) so the variance stays accurate when |mean| >> std.
Moments moments(const float* x, const Runs& r) {
  double sum = 0;
  for (int64_t k = 0; k < r.count; ++k)
    for (int64_t i = 0; i < r.length; ++i) sum += x[k * r.stride + i];
  double n = static_cast<double>(r.numel());
  double mean = sum / n;
  double squares = 0;
  for (int64_t k = 0; k < r.count; ++k)
    for (int64_t i = 0; i < r.length; ++i) {
      double dev = x[k * r.stride + i] - mean;
      squares += dev * dev;
    }
  return {mean, squares / n};
}

float inverse_std(double var, float eps) {
  return static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
}

// out = (x - mean) * inv_std * gamma + beta over the runs.
void normalize(float* out, const float* x, const Runs& r, float mean, float inv_std,
               const Affine& a) {
  for (int64_t k = 0; k < r.count; ++k) {
    float g = a.scale(k), b = a.shift(k);
    const float* xk = x + k * r.stride;
    float* ok = out + k * r.stride;
    for (int64_t i = 0; i < r.length; ++i) ok[i] = (xk[i] - mean) * inv_std * g + b;
  }
}

// Sums over the runs of dxhat = dout * gamma and of dxhat * xhat, xhat = (x - mean) * inv_std.
struct GradSums {
  double dxhat = 0, dxhat_xhat = 0;
};

GradSums grad_sums(const float* dout, const float* x, const Runs& r, float mean, float inv_std,
                   const Affine& a) {
  GradSums s;
  for (int64_t k = 0; k < r.count; ++k) {
    double g = a.scale(k);
    for (int64_t i = 0; i < r.length; ++i) {
      int64_t j = k * r.stride + i;
      double dxhat = dout[j] * g;
      s.dxhat += dxhat;
      s.dxhat_xhat += dxhat * ((x[j] - mean) * inv_std);
    }
  }
  return s;
}

// dinp += inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat). The two means over the
// normalised set come from the statistics' dependence on x: zero when they are constants (eval).
void accumulate_input_grad(float* dinp, const float* dout, const float* x, const Runs& r,
                           float mean, float inv_std, const Affine& a, double mean_dxhat,
                           double mean_dxhat_xhat) {
  float m1 = static_cast<float>(mean_dxhat), m2 = static_cast<float>(mean_dxhat_xhat);
  for (int64_t k = 0; k < r.count; ++k) {
    float g = a.scale(k);
    for (int64_t i = 0; i < r.length; ++i) {
      int64_t j = k * r.stride + i;
      float xhat = (x[j] - mean) * inv_std;
      dinp[j] += inv_std * (dout[j] * g - m1 - xhat * m2);
    }
  }
}

// Parallel grain: about this many elements of work per chunk.
int64_t grain_for(int64_t work_per_index) {
  constexpr int64_t kWorkPerChunk = int64_t{1} << 15;
  return std::max<int64_t>(1, kWorkPerChunk / std::max<int64_t>(1, work_per_index));
}

// Channel c of every sample: its runs start at c * S.
Runs channel_runs(const NormDims& d) {
  return {d.batch, d.spatial, d.channels * d.spatial};
}

// r <- (1 - m) r + m stat for one channel, the variance made unbiased with the n values it is of.
void update_running(float& running_mean, float& running_var, float mean, float var, double n,
                    double m) {
  running_mean = static_cast<float>((1.0 - m) * running_mean + m * mean);
  running_var = static_cast<float>((1.0 - m) * running_var + m * var * n / (n - 1.0));
}

}  // namespace

// Batch norm: parallel over channels; each channel's statistics are one serial loop.
void batch_norm_forward_train(float* out, float* mean, float* var, float* inv_std, const float* inp,
                              const float* gamma, const float* beta, const NormDims& d, float eps) {
  Runs runs = channel_runs(d);
  parallel_for(d.channels, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      int64_t offset = c * d.spatial;
      Moments m = moments(inp + offset, runs);
      mean[c] = static_cast<float>(m.mean);
      var[c] = static_cast<float>(m.var);
      inv_std[c] = inverse_std(m.var, eps);
      normalize(out + offset, inp + offset, runs, mean[c], inv_std[c],
                affine_from(gamma, beta, c, 0));
    }
  });
}

// Eval: no statistics to gather, so the rows [b, c, :] go in memory order instead of channel by
// channel (which jumps C * S floats between runs of S); per element the same expression as in
// training, so the result does not depend on the order.
void batch_norm_forward_eval(float* out, float* inv_std, const float* inp,
                             const float* running_mean, const float* running_var,
                             const float* gamma, const float* beta, const NormDims& d, float eps) {
  for (int64_t c = 0; c < d.channels; ++c) inv_std[c] = inverse_std(running_var[c], eps);
  const Runs one_row{1, d.spatial, d.spatial};
  parallel_for(d.batch * d.channels, grain_for(d.spatial), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t c = row % d.channels, offset = row * d.spatial;
      normalize(out + offset, inp + offset, one_row, running_mean[c], inv_std[c],
                affine_from(gamma, beta, c, 0));
    }
  });
}

void batch_norm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                         const float* inp, const float* mean, const float* inv_std,
                         const float* gamma, const NormDims& d, bool training) {
  Runs runs = channel_runs(d);
  double n = static_cast<double>(runs.numel());
  parallel_for(d.channels, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      int64_t offset = c * d.spatial;
      // Without gamma: the sums of dout and dout * xhat, which are dbeta and dgamma.
      GradSums s = grad_sums(dout + offset, inp + offset, runs, mean[c], inv_std[c], Affine{});
      if (dbeta) dbeta[c] += static_cast<float>(s.dxhat);
      if (dgamma) dgamma[c] += static_cast<float>(s.dxhat_xhat);
      if (!dinp) continue;
      double g = gamma ? gamma[c] : 1.0;
      double mean_dxhat = training ? g * s.dxhat / n : 0.0;
      double mean_dxhat_xhat = training ? g * s.dxhat_xhat / n : 0.0;
      accumulate_input_grad(dinp + offset, dout + offset, inp + offset, runs, mean[c], inv_std[c],
                            affine_from(gamma, nullptr, c, 0), mean_dxhat, mean_dxhat_xhat);
    }
  });
}

void batch_norm_update_running(float* running_mean, float* running_var, const float* mean,
                               const float* var, const NormDims& d, float momentum) {
  double n = static_cast<double>(d.batch * d.spatial);
  for (int64_t c = 0; c < d.channels; ++c)
    update_running(running_mean[c], running_var[c], mean[c], var[c], n, momentum);
}

// Synchronised batch norm: the same per-channel loops, with the statistics split into the local
// sums each process contributes and the group's sums the reducer hands back.
void batch_norm_sync_local_stats(double* stats, const float* inp, const NormDims& d) {
  Runs runs = channel_runs(d);
  parallel_for(d.channels, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const float* x = inp + c * d.spatial;
      double n = static_cast<double>(runs.numel()), sum = 0, squares = 0;
      for (int64_t k = 0; k < runs.count; ++k)
        for (int64_t i = 0; i < runs.length; ++i) sum += x[k * runs.stride + i];
      double local_mean = n > 0 ? sum / n : 0.0;
      for (int64_t k = 0; k < runs.count; ++k)
        for (int64_t i = 0; i < runs.length; ++i) {
          double dev = x[k * runs.stride + i] - local_mean;
          squares += dev * dev;
        }
      // A reducer only adds, so the group's variance is sum x^2 - (sum x)^2 / N; a local sum x^2
      // built from two-pass deviations is accurate to rounding, so that difference only costs
      // ~2 log10(|mean| / std) of double's 16 digits: harmless to float while |mean| < 1e4 std.
      stats[3 * c] = n;
      stats[3 * c + 1] = sum;
      stats[3 * c + 2] = squares + sum * local_mean;
    }
  });
}

void batch_norm_sync_forward(float* out, float* mean, float* var, float* inv_std,
                             const double* stats, const float* inp, const float* gamma,
                             const float* beta, const NormDims& d, float eps) {
  Runs runs = channel_runs(d);
  parallel_for(d.channels, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const double* s = stats + 3 * c;
      double n = s[0], group_mean = s[1] / n;
      // The group's sum of squared deviations; rounding can leave it a hair below zero.
      double group_var = std::max(0.0, s[2] - s[1] * group_mean) / n;
      int64_t offset = c * d.spatial;
      mean[c] = static_cast<float>(group_mean);
      var[c] = static_cast<float>(group_var);
      inv_std[c] = inverse_std(group_var, eps);
      normalize(out + offset, inp + offset, runs, mean[c], inv_std[c],
                affine_from(gamma, beta, c, 0));
    }
  });
}

void batch_norm_sync_update_running(float* running_mean, float* running_var, const float* mean,
                                    const float* var, const double* stats, const NormDims& d,
                                    float momentum) {
  for (int64_t c = 0; c < d.channels; ++c)
    update_running(running_mean[c], running_var[c], mean[c], var[c], stats[3 * c], momentum);
}

void batch_norm_sync_grad_sums(double* sums, const float* dout, const float* inp, const float* mean,
                               const float* inv_std, const NormDims& d) {
  Runs runs = channel_runs(d);
  parallel_for(d.channels, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      int64_t offset = c * d.spatial;
      GradSums s = grad_sums(dout + offset, inp + offset, runs, mean[c], inv_std[c], Affine{});
      sums[2 * c] = s.dxhat;
      sums[2 * c + 1] = s.dxhat_xhat;
    }
  });
}

void batch_norm_sync_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                              const float* inp, const float* mean, const float* inv_std,
                              const float* gamma, const double* local_sums,
                              const double* group_sums, const double* stats, const NormDims& d) {
  Runs runs = channel_runs(d);
  parallel_for(d.channels, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      if (dbeta) dbeta[c] += static_cast<float>(local_sums[2 * c]);
      if (dgamma) dgamma[c] += static_cast<float>(local_sums[2 * c + 1]);
      if (!dinp) continue;
      int64_t offset = c * d.spatial;
      double n = stats[3 * c], g = gamma ? gamma[c] : 1.0;
      accumulate_input_grad(dinp + offset, dout + offset, inp + offset, runs, mean[c], inv_std[c],
                            affine_from(gamma, nullptr, c, 0), g * group_sums[2 * c] / n,
                            g * group_sums[2 * c + 1] / n);
    }
  });
}

// Group norm: parallel over (sample, group) for the statistics and dinp; the parameter
// gradients sum over the batch, so they are parallel over channels instead.
void group_norm_forward(float* out, float* mean, float* inv_std, const float* inp,
                        const float* gamma, const float* beta, const NormDims& d, int64_t groups,
                        float eps) {
  int64_t group_channels = d.channels / groups;
  Runs runs{group_channels, d.spatial, d.spatial};
  parallel_for(d.batch * groups, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      // Sample b's group g starts at channel g * group_channels: offset bg * (C / G) * S.
      int64_t offset = bg * runs.numel();
      Moments m = moments(inp + offset, runs);
      mean[bg] = static_cast<float>(m.mean);
      inv_std[bg] = inverse_std(m.var, eps);
      normalize(out + offset, inp + offset, runs, mean[bg], inv_std[bg],
                affine_from(gamma, beta, (bg % groups) * group_channels, 1));
    }
  });
}

void group_norm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                         const float* inp, const float* mean, const float* inv_std,
                         const float* gamma, const NormDims& d, int64_t groups) {
  int64_t group_channels = d.channels / groups;
  Runs runs{group_channels, d.spatial, d.spatial};
  double n = static_cast<double>(runs.numel());
  if (dinp)
    parallel_for(d.batch * groups, grain_for(runs.numel()), [&](int64_t begin, int64_t end) {
      for (int64_t bg = begin; bg < end; ++bg) {
        int64_t offset = bg * runs.numel();
        Affine affine = affine_from(gamma, nullptr, (bg % groups) * group_channels, 1);
        GradSums s = grad_sums(dout + offset, inp + offset, runs, mean[bg], inv_std[bg], affine);
        accumulate_input_grad(dinp + offset, dout + offset, inp + offset, runs, mean[bg],
                              inv_std[bg], affine, s.dxhat / n, s.dxhat_xhat / n);
      }
    });
  if (!dgamma && !dbeta) return;
  Runs channel{1, d.spatial, d.spatial};
  parallel_for(d.channels, grain_for(d.batch * d.spatial), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      GradSums total;
      for (int64_t b = 0; b < d.batch; ++b) {
        int64_t offset = (b * d.channels + c) * d.spatial;
        int64_t bg = b * groups + c / group_channels;
        GradSums s = grad_sums(dout + offset, inp + offset, channel, mean[bg], inv_std[bg], {});
        total.dxhat += s.dxhat;
        total.dxhat_xhat += s.dxhat_xhat;
      }
      if (dbeta) dbeta[c] += static_cast<float>(total.dxhat);
      if (dgamma) dgamma[c] += static_cast<float>(total.dxhat_xhat);
    }
  });
}

}  // namespace dpm
