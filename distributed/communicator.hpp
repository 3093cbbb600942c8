#pragma once
// The process group of a run (docs/distributed.md). Started under an MPI launcher (mpirun, srun,
// a cluster's scheduler) by a dpmlab built with MPI, Communicator::world() is every rank of
// MPI_COMM_WORLD; otherwise, also in a build without MPI, it is this process alone (rank 0 of 1),
// whose collectives are no-ops, so code written for R ranks runs unchanged on one.
//
// MPI is initialised on the first call of world() (MPI_THREAD_FUNNELED: only the thread that
// calls world() talks to MPI; oneTBB's workers never do) and finalised at exit. Every collective
// must be called by every rank in the same order, as MPI requires; the reductions are MPI's own,
// deterministic for a fixed number of ranks. A rank that fails calls abort(), which ends every
// rank (a rank that returned would leave the others waiting in their next collective); a rank
// that dies is noticed by the launcher, which ends the others (OpenMPI's mpirun does).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dpm::dist {

// True when this dpmlab was built with MPI (the CMake option DPM_WITH_MPI and an MPI found).
bool built_with_mpi();

class Communicator {
 public:
  static Communicator& world();
  // This process alone (MPI_COMM_SELF's role): e.g. a single-process reference run beside a
  // data-parallel one, in the same program.
  static Communicator& self();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }
  std::string describe() const;  // "rank 1 of 4 (MPI)", "a single process"

  // In place, elementwise over the ranks.
  void allreduce_sum(double* values, int64_t count);
  void allreduce_sum(float* values, int64_t count);
  void allreduce_max(double* values, int64_t count);
  // The smallest and largest `value` over the ranks (e.g. a checksum: equal when all agree).
  std::pair<uint64_t, uint64_t> min_max(uint64_t value);
  // Root's values to every rank.
  void broadcast(float* values, int64_t count, int root = 0);
  void broadcast(double* values, int64_t count, int root = 0);
  // Every rank's `local` values (any length each), concatenated in rank order, on every rank.
  std::vector<double> allgather(const std::vector<double>& local);
  std::vector<std::byte> allgather(const std::vector<std::byte>& local);
  void barrier();
  // Ends every rank of the run with `code` (MPI_Abort), after printing `message` on stderr.
  [[noreturn]] void abort(const std::string& message, int code);

 private:
  explicit Communicator(bool world);
  int rank_ = 0, size_ = 1;
};

// The contiguous rows [begin, end) of `total` that rank `rank` of `size` takes: sizes differ by
// at most one, lower ranks take the larger shares, and together they cover 0..total once.
struct Shard {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Shard shard_of(int64_t total, int rank, int size);

}  // namespace dpm::dist
