#pragma once
// Threading policy: one owner of parallelism per region. Either OpenBLAS runs one large GEMM
// with all threads, or oneTBB splits work (over batch, channels, rows) and every GEMM inside runs
// on one OpenBLAS thread. set_num_threads() sets both limits; parallel_for() switches OpenBLAS to
// one thread for the duration of its region, so the two never oversubscribe the cores.
#include <cstdint>
#include <functional>

namespace dpm {

// n <= 0 means all hardware threads (the default, applied on first use).
void set_num_threads(int n);
int num_threads();

// Calls body(begin, end) on disjoint chunks of [0, n) in parallel, chunks of about `grain`
// indices (between grain/2 and grain). Each index must be written by exactly one chunk, so results do not depend on the split
// (bitwise determinism: never reduce floats across chunks here). Runs inline when n <= grain or
// when called from inside another parallel_for.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace dpm
