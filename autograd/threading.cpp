#include "autograd/threading.hpp"

#include <cblas.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <memory>
#include <mutex>
#include <thread>

namespace dpm {
namespace {

std::unique_ptr<tbb::global_control> g_tbb_limit;
int g_threads = 0;
std::once_flag g_init;
thread_local bool t_in_parallel_region = false;

void apply(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  g_threads = n;
  g_tbb_limit = std::make_unique<tbb::global_control>(
      tbb::global_control::max_allowed_parallelism, static_cast<size_t>(n));
  openblas_set_num_threads(n);
}

void ensure_initialised() {
  std::call_once(g_init, [] {
    if (g_threads == 0) apply(0);
  });
}

}  // namespace

void set_num_threads(int n) {
  std::call_once(g_init, [] {});
  apply(n);
}

int num_threads() {
  ensure_initialised();
  return g_threads;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  ensure_initialised();
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain || g_threads == 1 || t_in_parallel_region) {
    body(0, n);
    return;
  }
  // oneTBB owns this region: GEMMs called from the body must not spawn OpenBLAS threads.
  openblas_set_num_threads(1);
  t_in_parallel_region = true;
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, n, static_cast<size_t>(grain)),
      [&](const tbb::blocked_range<int64_t>& r) {
        bool was = t_in_parallel_region;
        t_in_parallel_region = true;
        body(r.begin(), r.end());
        t_in_parallel_region = was;
      },
      tbb::simple_partitioner());
  t_in_parallel_region = false;
  openblas_set_num_threads(g_threads);
}

}  // namespace dpm
