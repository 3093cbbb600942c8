#include "distributed/communicator.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#ifdef DPM_HAVE_MPI
#include <mpi.h>
#endif

namespace dpm::dist {
namespace {

// A launcher sets one of these in every rank's environment; without one this is a plain process
// and MPI is not initialised (a singleton MPI_Init can be slow or chatty, and nothing needs it).
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

#ifdef DPM_HAVE_MPI
// MPI counts are ints: larger arrays go in chunks.
template <typename Fn>
void in_chunks(int64_t count, Fn&& fn) {
  for (int64_t done = 0; done < count;) {
    const int n = static_cast<int>(std::min<int64_t>(count - done, INT_MAX));
    fn(done, n);
    done += n;
  }
}

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(call) + ": " + std::string(text, length));
}

struct Finalizer {
  ~Finalizer() {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Finalize();
  }
};
#endif

}  // namespace

bool built_with_mpi() {
#ifdef DPM_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Communicator::Communicator(bool world) {
  if (!world) return;
#ifdef DPM_HAVE_MPI
  if (!launched_by_mpi()) return;
  static Finalizer finalizer;
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_FUNNELED)
    throw std::runtime_error("MPI provides thread level " + std::to_string(provided) +
                             ", dpmlab needs MPI_THREAD_FUNNELED");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  if (launched_by_mpi())
    std::fprintf(stderr,
                 "dpmlab: warning: started by an MPI launcher, but this dpmlab was built without "
                 "MPI: every rank runs alone (rebuild with libopenmpi-dev installed)\n");
#endif
}

Communicator& Communicator::world() {
  static Communicator world(true);
  return world;
}

Communicator& Communicator::self() {
  static Communicator self(false);
  return self;
}

std::string Communicator::describe() const {
  if (!distributed()) return "a single process";
  return "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " (MPI)";
}

#ifdef DPM_HAVE_MPI
namespace {

template <typename T>
void allreduce(T* values, int64_t count, MPI_Datatype type, MPI_Op op) {
  in_chunks(count, [&](int64_t at, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, values + at, n, type, op, MPI_COMM_WORLD), "MPI_Allreduce");
  });
}

template <typename T>
void bcast(T* values, int64_t count, MPI_Datatype type, int root) {
  in_chunks(count, [&](int64_t at, int n) {
    check(MPI_Bcast(values + at, n, type, root, MPI_COMM_WORLD), "MPI_Bcast");
  });
}

}  // namespace
#endif

void Communicator::allreduce_sum(double* values, int64_t count) {
#ifdef DPM_HAVE_MPI
  if (distributed()) allreduce(values, count, MPI_DOUBLE, MPI_SUM);
#endif
}

void Communicator::allreduce_sum(float* values, int64_t count) {
#ifdef DPM_HAVE_MPI
  if (distributed()) allreduce(values, count, MPI_FLOAT, MPI_SUM);
#endif
}

void Communicator::allreduce_max(double* values, int64_t count) {
#ifdef DPM_HAVE_MPI
  if (distributed()) allreduce(values, count, MPI_DOUBLE, MPI_MAX);
#endif
}

void Communicator::broadcast(float* values, int64_t count, int root) {
#ifdef DPM_HAVE_MPI
  if (distributed()) bcast(values, count, MPI_FLOAT, root);
#endif
}

void Communicator::broadcast(double* values, int64_t count, int root) {
#ifdef DPM_HAVE_MPI
  if (distributed()) bcast(values, count, MPI_DOUBLE, root);
#endif
}

void Communicator::barrier() {
#ifdef DPM_HAVE_MPI
  if (distributed()) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

std::pair<uint64_t, uint64_t> Communicator::min_max(uint64_t value) {
  uint64_t low = value, high = value;
#ifdef DPM_HAVE_MPI
  if (distributed()) {
    check(MPI_Allreduce(MPI_IN_PLACE, &low, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD),
          "MPI_Allreduce");
    check(MPI_Allreduce(MPI_IN_PLACE, &high, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
#endif
  return {low, high};
}

#ifdef DPM_HAVE_MPI
namespace {
// Every rank's `local` (any length each) concatenated in rank order, on every rank of world.
template <typename T>
std::vector<T> allgather_world(const std::vector<T>& local, MPI_Datatype type, int ranks) {
  if (local.size() > static_cast<size_t>(INT_MAX))
    throw std::invalid_argument("Communicator::allgather: more than INT_MAX values per rank");
  int mine = static_cast<int>(local.size());
  std::vector<int> counts(static_cast<size_t>(ranks)), offsets(static_cast<size_t>(ranks));
  check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD),
        "MPI_Allgather");
  int64_t total = 0;
  for (int r = 0; r < ranks; ++r) {
    offsets[r] = static_cast<int>(total);
    total += counts[r];
  }
  if (total > INT_MAX)
    throw std::invalid_argument("Communicator::allgather: more than INT_MAX values in all");
  std::vector<T> all(static_cast<size_t>(total));
  check(MPI_Allgatherv(local.data(), mine, type, all.data(), counts.data(), offsets.data(), type,
                       MPI_COMM_WORLD),
        "MPI_Allgatherv");
  return all;
}
}  // namespace
#endif

std::vector<double> Communicator::allgather(const std::vector<double>& local) {
#ifdef DPM_HAVE_MPI
  if (distributed()) return allgather_world(local, MPI_DOUBLE, size_);
#endif
  return local;
}

std::vector<std::byte> Communicator::allgather(const std::vector<std::byte>& local) {
#ifdef DPM_HAVE_MPI
  if (distributed()) return allgather_world(local, MPI_BYTE, size_);
#endif
  return local;
}

void Communicator::abort(const std::string& message, int code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
#ifdef DPM_HAVE_MPI
  if (distributed()) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

Shard shard_of(int64_t total, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size || total < 0)
    throw std::invalid_argument("shard_of: rank " + std::to_string(rank) + " of " +
                                std::to_string(size) + " over " + std::to_string(total) + " rows");
  const int64_t base = total / size, extra = total % size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

}  // namespace dpm::dist
