// A Tensor through a Linear layer with set weights, so the output is known exactly:
// W = [[1, 2, 3], [4, 5, 6]], b = [0.5, -1], x = [1, 0, -1] gives y = [-1.5, -3].
#include <cstdio>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/tensor.hpp"
#include "autograd/variable.hpp"
#include "nn/linear.hpp"

int main() {
  dpm::Rng rng(0);
  dpm::nn::Linear layer(3, 2, rng);
  layer.weight().data().copy_(dpm::Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}));
  layer.bias().data().copy_(dpm::Tensor::from_vector({2}, {0.5f, -1}));
  dpm::Variable x(dpm::Tensor::from_vector({1, 3}, {1, 0, -1}));
  const std::vector<float> y = layer.forward(x).data().to_vector();
  std::printf("consumer: y = [%g, %g]\n", y[0], y[1]);
  return 0;
}
