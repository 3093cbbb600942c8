#pragma once
// Rng: our own seeded generator (xoshiro256**, seeded through splitmix64) with explicit,
// serialisable state. Its numbers depend only on the seed and the calls made, never on the
// standard library, so runs repeat bitwise on any platform with IEEE doubles and the same libm.
#include <array>
#include <cstdint>
#include <vector>

#include "autograd/tensor.hpp"

namespace dpm {

class Rng {
 public:
  // The full state: four xoshiro words plus the (seed, stream) pair that split() derives from.
  using State = std::array<uint64_t, 6>;

  explicit Rng(uint64_t seed = 0, uint64_t stream = 0);

  uint64_t next_u64();
  // Advances as `draws` calls of next_u64() would (a normal() or uniform() is one or two of them):
  // a part of a batch skips the other parts' draws and still sees its own.
  void discard(uint64_t draws);
  double uniform();                          // [0, 1), 53 random bits
  float uniform_float();                     // [0, 1), 24 random bits
  double uniform(double low, double high);   // [low, high)
  double normal();                           // standard normal (Box-Muller, one of the pair used)
  uint64_t integer(uint64_t n);              // uniform in [0, n), unbiased (Lemire); n > 0
  int64_t integer(int64_t low, int64_t high);  // uniform in [low, high]
  std::vector<int64_t> permutation(int64_t n);  // Fisher-Yates

  // Fills with i.i.d. draws; normals are used in pairs, so a fill consumes ceil(n/2)*2 uniforms.
  void fill_normal(float* out, int64_t n, float mean = 0.0f, float stddev = 1.0f);
  void fill_uniform(float* out, int64_t n, float low = 0.0f, float high = 1.0f);

  // An independent generator for sub-stream `id`: the same (seed, stream, id) always gives the
  // same generator, whatever this one has drawn. Use it for per-worker or per-purpose streams.
  Rng split(uint64_t id) const;

  State state() const;
  void set_state(const State& state);
  uint64_t seed() const { return seed_; }

 private:
  std::array<uint64_t, 4> s_{};
  uint64_t seed_ = 0;
  uint64_t stream_ = 0;
};

Tensor randn(const Shape& shape, Rng& rng, float mean = 0.0f, float stddev = 1.0f);
Tensor rand_uniform(const Shape& shape, Rng& rng, float low = 0.0f, float high = 1.0f);

}  // namespace dpm
