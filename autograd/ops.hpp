#pragma once
// Everything differentiable, in one include.
#include "autograd/ops/activation.hpp"
#include "autograd/ops/arith.hpp"
#include "autograd/ops/conv.hpp"
#include "autograd/ops/linalg.hpp"
#include "autograd/ops/loss.hpp"
#include "autograd/ops/norm.hpp"
#include "autograd/ops/pool.hpp"
#include "autograd/ops/reduce.hpp"
#include "autograd/ops/shape.hpp"
#include "autograd/variable.hpp"
