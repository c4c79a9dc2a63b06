// Data-parallel collectives: one interface, three transports. Single process; MPI (mpirun); TCP
// (torchrun-style RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT, as set by `bertrazor launch`). CUDA
// tensors go through NCCL on a dedicated stream when the library was built with it, bootstrapped
// through the MPI or TCP transport; otherwise they are staged through the host. Every wait has a
// deadline (BERTRAZOR_DIST_TIMEOUT seconds, default 300): a rank that dies or never joins makes the
// others throw br::Error instead of hanging. docs/DISTRIBUTED.md has the semantics.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace br {

class NcclComm;  // train/comm_nccl.cpp

class Communicator {
 public:
  static constexpr size_t kDefaultBucketBytes = size_t(25) << 20;  // torch DDP's bucket_cap_mb=25

  virtual ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  int local_world_size() const { return local_world_size_; }
  bool is_main() const { return rank_ == 0; }  // logs, saves checkpoints and results
  double timeout_seconds() const { return timeout_s_; }
  // "single", "mpi", "tcp", with "+nccl" when CUDA tensors use NCCL.
  std::string backend() const;
  bool uses_nccl() const { return nccl_ != nullptr; }

  // t <- sum over ranks of t, in place. f32, f64, i32, i64, and bf16/f16 (NCCL reduces those
  // natively; the host transports widen to f32, sum, and round once). CPU or CUDA.
  void all_reduce_sum(const Tensor& t);
  // The same for many tensors: consecutive tensors of one dtype and device are flattened into
  // buckets of at most bucket_bytes (a larger tensor is reduced alone, in place), one collective
  // per bucket, then copied back. Equal to reducing each tensor alone.
  void all_reduce_sum(const std::vector<Tensor>& ts, size_t bucket_bytes = kDefaultBucketBytes);
  // Starts t <- sum over ranks of t, in place. With NCCL the collective runs on the communication
  // stream while the compute stream goes on, so t must not be touched until join(); the host
  // transports finish it before returning. A no-op for world size 1.
  void all_reduce_sum_async(const Tensor& t);
  // The compute stream (and so any later kernel or copy) waits for every collective started so far.
  void join();
  // grads <- (sum over ranks of grads) / world_size, bucketed: what DDP does after backward.
  void average_gradients(const std::vector<Tensor>& grads,
                         size_t bucket_bytes = kDefaultBucketBytes);
  // t <- t / world_size, on t's device (the averaging step of average_gradients, for callers that
  // reduce the sum themselves, like GradientReducer). A no-op for world size 1.
  void divide_by_world_size(const Tensor& t) const;
  // t <- root's t on every rank.
  void broadcast(const Tensor& t, int root);
  void barrier();
  // Sum of one number over ranks (the logged loss is all_reduce_sum(loss) / world_size).
  double all_reduce_sum(double x);
  // Every rank's vector, concatenated in rank order; lengths may differ between ranks.
  std::vector<double> all_gather(const std::vector<double>& local);
  // Every rank's bytes, one entry per rank in rank order.
  std::vector<std::string> all_gather_bytes(const std::string& local);
  // Throws on every rank when `value` differs between ranks, naming the ranks and their values.
  // Call at start with a fingerprint of the model config, world size and training flags.
  void check_consistent(const std::string& what, const std::string& value);
  // Blocks until every CUDA collective issued so far has finished (deadline-checked); no-op on CPU.
  void synchronize();

 protected:
  Communicator(int rank, int world_size, int local_rank, int local_world_size, double timeout_s);
  virtual std::string transport() const = 0;
  // Host transports. Buffers are host memory; reduce handles f32, f64, i32, i64.
  virtual void host_all_reduce_sum(void* data, int64_t n, DType dtype) = 0;
  virtual void host_broadcast(void* data, size_t bytes, int root) = 0;
  virtual void host_all_gather(const void* send, size_t bytes, void* recv) = 0;  // equal sizes
  virtual void host_barrier() = 0;
  // Creates the NCCL communicator (CUDA builds with NCCL), exchanging its id over this transport.
  void enable_nccl();

 private:
  void reduce_one(const Tensor& t, bool async = false);
  void reduce_host_tensor(const Tensor& t);

  int rank_, world_size_, local_rank_, local_world_size_;
  double timeout_s_;
  std::unique_ptr<NcclComm> nccl_;

  friend class NcclComm;
};

// BERTRAZOR_DIST_TIMEOUT in seconds (default 300); throws on a malformed value.
double dist_timeout_seconds();

// Picks the transport from the environment: OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK -> MPI;
// RANK and WORLD_SIZE -> TCP rendezvous at MASTER_ADDR:MASTER_PORT; otherwise single process.
// With device == cuda it selects GPU local_rank % device_count and adds NCCL for CUDA tensors, so
// call it before any CUDA allocation.
std::unique_ptr<Communicator> make_communicator(Device device = Device::cpu);

std::unique_ptr<Communicator> make_single_communicator();
// Needs a build with MPI (BERTRAZOR_WITH_MPI); initialises MPI once per process.
std::unique_ptr<Communicator> make_mpi_communicator(bool use_nccl);

struct TcpOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  double timeout_s = 300;
};
// Rank 0 listens on master_port and relays: every collective is a star through rank 0, which sums
// in rank order, so every rank gets bitwise the same result.
std::unique_ptr<Communicator> make_tcp_communicator(const TcpOptions& opts, bool use_nccl);
// TcpOptions from RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
TcpOptions tcp_options_from_env();

}  // namespace br
