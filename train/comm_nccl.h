// NCCL for CUDA tensors, internal to train/: the collectives run on their own stream, ordered after
// the compute stream's work through events, and the compute stream waits for them in turn, so
// backward kernels issued after a bucket overlap its all-reduce.
#pragma once
#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace br {

class Communicator;

class NcclComm {
 public:
  // Rank 0 creates the unique id; `host` broadcasts it. Uses the current CUDA device.
  NcclComm(Communicator& host, int rank, int world_size, double timeout_s);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  // In place, CUDA f32/f64/i32/i64/bf16/f16. The collective waits for the compute stream's work so
  // far; unless `async`, the compute stream then waits for the collective. With `async` it does not:
  // later kernels run alongside it until join().
  void all_reduce_sum(const Tensor& t, bool async = false);
  void join();  // the compute stream waits for every collective enqueued so far
  void broadcast(const Tensor& t, int root);
  void synchronize();  // waits for the comm stream with the deadline; aborts NCCL on timeout

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Whether this build has NCCL (BERTRAZOR_WITH_NCCL).
bool nccl_built();

}  // namespace br
