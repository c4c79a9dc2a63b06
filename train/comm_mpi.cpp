// MPI transport: non-blocking collectives on a private duplicate of MPI_COMM_WORLD, polled with a
// deadline so a rank that never joins turns into a br::Error. After a timeout the process cannot
// finalize MPI cleanly (a request is still pending), so it aborts the job at exit instead: the
// other ranks are torn down rather than left waiting.
#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>

#include "train/communicator.h"

#if BERTRAZOR_WITH_MPI
#include <mpi.h>
#endif

namespace br {

#if BERTRAZOR_WITH_MPI

namespace {

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(buf, size_t(len));
}

#define BR_MPI_CHECK(expr)                                                                   \
  do {                                                                                       \
    int _rc = (expr);                                                                        \
    if (_rc != MPI_SUCCESS)                                                                  \
      ::br::fail("MPI error {} at {}:{}: {}", mpi_error_string(_rc), __FILE__, __LINE__, #expr); \
  } while (0)

// MPI is initialised once per process and finalized at exit, or the job aborted if a collective
// timed out and left a request behind.
class MpiRuntime {
 public:
  static MpiRuntime& get() {
    static MpiRuntime rt;
    return rt;
  }
  void mark_broken() { broken_ = true; }
  ~MpiRuntime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || !owner_) return;
    if (broken_) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
  }

 private:
  MpiRuntime() {
    int initialized = 0;
    BR_MPI_CHECK(MPI_Initialized(&initialized));
    if (!initialized) {
      int provided = 0;
      BR_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
      owner_ = true;
    }
    BR_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  }
  bool owner_ = false;
  bool broken_ = false;
};

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    default: fail("MPI all_reduce_sum: no MPI type for {}", dtype_name(d));
  }
}

class MpiCommunicator final : public Communicator {
 public:
  static std::unique_ptr<Communicator> create(bool use_nccl) {
    MpiRuntime::get();
    MPI_Comm comm;
    BR_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
    BR_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    int rank = 0, world = 1, local_rank = 0, local_world = 1;
    BR_MPI_CHECK(MPI_Comm_rank(comm, &rank));
    BR_MPI_CHECK(MPI_Comm_size(comm, &world));
    MPI_Comm node;
    BR_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
    BR_MPI_CHECK(MPI_Comm_rank(node, &local_rank));
    BR_MPI_CHECK(MPI_Comm_size(node, &local_world));
    BR_MPI_CHECK(MPI_Comm_free(&node));
    std::unique_ptr<MpiCommunicator> c(
        new MpiCommunicator(comm, rank, world, local_rank, local_world));
    if (use_nccl) c->enable_nccl();
    return c;
  }

  ~MpiCommunicator() override {
    if (!broken_) MPI_Comm_free(&comm_);
  }

 protected:
  std::string transport() const override { return "mpi"; }

  void host_all_reduce_sum(void* data, int64_t n, DType dtype) override {
    const size_t elem = dtype_size(dtype);
    for (int64_t off = 0; off < n; off += INT_MAX / 2) {
      int count = int(std::min<int64_t>(n - off, INT_MAX / 2));
      MPI_Request req;
      BR_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(data) + size_t(off) * elem,
                                  count, mpi_type(dtype), MPI_SUM, comm_, &req));
      wait(req, "all_reduce_sum");
    }
  }

  void host_broadcast(void* data, size_t bytes, int root) override {
    for (size_t off = 0; off < bytes; off += INT_MAX / 2) {
      int count = int(std::min<size_t>(bytes - off, INT_MAX / 2));
      MPI_Request req;
      BR_MPI_CHECK(MPI_Ibcast(static_cast<char*>(data) + off, count, MPI_BYTE, root, comm_, &req));
      wait(req, "broadcast");
    }
  }

  void host_all_gather(const void* send, size_t bytes, void* recv) override {
    BR_CHECK(bytes <= size_t(INT_MAX), "MPI all_gather: {} bytes per rank exceeds INT_MAX", bytes);
    MPI_Request req;
    BR_MPI_CHECK(MPI_Iallgather(send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, comm_,
                                &req));
    wait(req, "all_gather");
  }

  void host_barrier() override {
    MPI_Request req;
    BR_MPI_CHECK(MPI_Ibarrier(comm_, &req));
    wait(req, "barrier");
  }

 private:
  MpiCommunicator(MPI_Comm comm, int rank, int world, int local_rank, int local_world)
      : Communicator(rank, world, local_rank, local_world, dist_timeout_seconds()), comm_(comm) {}

  // Polls the request until done or the deadline; yields first, then sleeps briefly.
  void wait(MPI_Request& req, const char* what) {
    BR_CHECK(!broken_, "MPI {}: an earlier collective timed out; the communicator is unusable",
             what);
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_seconds());
    for (int spins = 0;; ++spins) {
      int done = 0;
      BR_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
      if (done) return;
      if (clock::now() > deadline) {
        broken_ = true;
        MpiRuntime::get().mark_broken();
        fail("MPI {}: rank {} of {} timed out after {} s waiting for the other ranks (did one "
             "exit or never reach this call? BERTRAZOR_DIST_TIMEOUT sets the limit)",
             what, rank(), world_size(), timeout_seconds());
      }
      if (spins < 1000) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  MPI_Comm comm_;
  bool broken_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(bool use_nccl) {
  return MpiCommunicator::create(use_nccl);
}

#else

std::unique_ptr<Communicator> make_mpi_communicator(bool) {
  fail("make_mpi_communicator: launched under MPI but bertrazor was built without MPI "
       "(reconfigure with MPI installed, or use `bertrazor launch`)");
}

#endif

}  // namespace br
