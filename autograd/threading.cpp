#include "autograd/threading.hpp"

#include <cblas.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#define DPM_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DPM_THREAD_SANITIZER 1
#endif
#endif

namespace dpm {
namespace {

std::unique_ptr<tbb::global_control> g_tbb_limit;
int g_threads = 0;
std::once_flag g_init;
thread_local bool t_in_parallel_region = false;

void apply(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  g_threads = n;
  g_tbb_limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      static_cast<size_t>(n));
  openblas_set_num_threads(n);
}

void ensure_initialised() {
  std::call_once(g_init, [] {
    if (g_threads == 0) apply(0);
  });
}

// Runs body on the chunks of tbb::simple_partitioner: [0, n) halved until no chunk is longer
// than grain.
void run_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
#ifndef DPM_THREAD_SANITIZER
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, n, static_cast<size_t>(grain)),
      [&](const tbb::blocked_range<int64_t>& r) {
        bool was = t_in_parallel_region;
        t_in_parallel_region = true;
        body(r.begin(), r.end());
        t_in_parallel_region = was;
      },
      tbb::simple_partitioner());
#else
  // ThreadSanitizer cannot see the synchronisation inside the uninstrumented libtbb, so it reports
  // every task hand-over as a race, in oneTBB's inline code and in the bodies alike. Under it the
  // same chunks run on plain threads, whose start and join it does see: what it then reports is a
  // race between chunks, the bug it is there to find (docs/reliability.md).
  using Chunk = std::pair<int64_t, int64_t>;  // [begin, end)
  std::vector<Chunk> chunks;
  std::function<void(int64_t, int64_t)> split = [&](int64_t begin, int64_t end) {
    if (end - begin <= grain) {
      chunks.emplace_back(begin, end);
      return;
    }
    int64_t middle = begin + (end - begin) / 2;
    split(begin, middle);
    split(middle, end);
  };
  split(0, n);
  // A fixed share per thread: any hand-out through shared state would order the chunks for TSan
  // and hide exactly the races between them.
  const size_t threads = std::min(static_cast<size_t>(g_threads), chunks.size());
  auto work = [&](size_t first) {
    t_in_parallel_region = true;
    for (size_t i = first; i < chunks.size(); i += threads) body(chunks[i].first, chunks[i].second);
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work, t);
  work(0);
  for (std::thread& helper : helpers) helper.join();
#endif
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
  run_chunks(n, grain, body);
  t_in_parallel_region = false;
  openblas_set_num_threads(g_threads);
}

}  // namespace dpm
