#include "autograd/rng.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <utility>

namespace dpm {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Combines two words into a new stream id; distinct inputs give (practically) distinct streams.
uint64_t mix_stream(uint64_t stream, uint64_t id) {
  uint64_t x = stream ^ 0xD1B54A32D192ED03ull;
  uint64_t a = splitmix64(x);
  x = a ^ id;
  return splitmix64(x);
}

}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {
  uint64_t x = seed ^ mix_stream(stream, 0x5EEDull);
  for (auto& w : s_) w = splitmix64(x);
}

uint64_t Rng::next_u64() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void Rng::discard(uint64_t draws) {
  for (uint64_t i = 0; i < draws; ++i) next_u64();
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
float Rng::uniform_float() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }
double Rng::uniform(double low, double high) { return low + (high - low) * uniform(); }

namespace {
// Box-Muller on (0, 1] x [0, 1): both outputs of one pair of uniforms.
std::pair<double, double> box_muller(Rng& rng) {
  double u1 = 1.0 - rng.uniform();  // (0, 1]: log is finite
  double u2 = rng.uniform();
  double r = std::sqrt(-2.0 * std::log(u1));
  double theta = 2.0 * std::numbers::pi * u2;
  return {r * std::cos(theta), r * std::sin(theta)};
}
}  // namespace

double Rng::normal() { return box_muller(*this).first; }

uint64_t Rng::integer(uint64_t n) {
  if (n == 0) throw std::invalid_argument("Rng::integer: empty range");
  // Lemire's multiply-shift with rejection: unbiased for every n.
  __uint128_t m = static_cast<__uint128_t>(next_u64()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<__uint128_t>(next_u64()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

int64_t Rng::integer(int64_t low, int64_t high) {
  if (high < low) throw std::invalid_argument("Rng::integer: high < low");
  uint64_t span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low) + 1;
  if (span == 0) return static_cast<int64_t>(next_u64());  // the full 64-bit range
  return low + static_cast<int64_t>(integer(span));
}

std::vector<int64_t> Rng::permutation(int64_t n) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<size_t>(i)], p[integer(static_cast<uint64_t>(i) + 1)]);
  return p;
}

void Rng::fill_normal(float* out, int64_t n, float mean, float stddev) {
  for (int64_t i = 0; i < n; i += 2) {
    auto [a, b] = box_muller(*this);
    out[i] = static_cast<float>(mean + stddev * a);
    if (i + 1 < n) out[i + 1] = static_cast<float>(mean + stddev * b);
  }
}

void Rng::fill_uniform(float* out, int64_t n, float low, float high) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(uniform(low, high));
}

Rng Rng::split(uint64_t id) const { return Rng(seed_, mix_stream(stream_, id)); }

Rng::State Rng::state() const { return {s_[0], s_[1], s_[2], s_[3], seed_, stream_}; }

void Rng::set_state(const State& state) {
  if ((state[0] | state[1] | state[2] | state[3]) == 0)
    throw std::invalid_argument("Rng::set_state: all-zero xoshiro state is invalid");
  for (size_t i = 0; i < 4; ++i) s_[i] = state[i];
  seed_ = state[4];
  stream_ = state[5];
}

Tensor randn(const Shape& shape, Rng& rng, float mean, float stddev) {
  Tensor t = Tensor::empty(shape);
  rng.fill_normal(t.data(), t.numel(), mean, stddev);
  return t;
}

Tensor rand_uniform(const Shape& shape, Rng& rng, float low, float high) {
  Tensor t = Tensor::empty(shape);
  rng.fill_uniform(t.data(), t.numel(), low, high);
  return t;
}

}  // namespace dpm
