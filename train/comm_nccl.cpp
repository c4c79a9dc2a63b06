// NCCL communicator in non-blocking mode (ncclConfig_t.blocking = 0), so initialisation and every
// wait can be polled against the deadline and aborted (ncclCommAbort) instead of hanging.
#include "train/comm_nccl.h"

#include "train/communicator.h"

#if BERTRAZOR_WITH_NCCL
#include <nccl.h>

#include <chrono>
#include <thread>

#include "core/cuda_check.h"
#endif

namespace br {

#if BERTRAZOR_WITH_NCCL

bool nccl_built() { return true; }

#define BR_NCCL_CHECK(expr)                                                                    \
  do {                                                                                         \
    ncclResult_t _r = (expr);                                                                  \
    if (_r != ncclSuccess && _r != ncclInProgress)                                             \
      ::br::fail("NCCL error {} ({}) at {}:{}: {}", int(_r), ncclGetErrorString(_r), __FILE__, \
                 __LINE__, #expr);                                                             \
  } while (0)

namespace {

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::f16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
  }
  fail("NCCL: no type for {}", dtype_name(d));
}

}  // namespace

struct NcclComm::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t ready = nullptr;  // compute stream reached the collective
  cudaEvent_t done = nullptr;   // comm stream finished it
  int rank = 0, world = 1;
  double timeout_s = 300;
  bool aborted = false;

  // Polls the communicator's async state until it leaves ncclInProgress, under the deadline.
  void settle(const char* what) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      ncclResult_t state = ncclSuccess;
      BR_NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) {
        abort();
        fail("NCCL {}: rank {} failed: {} ({})", what, rank, ncclGetErrorString(state), int(state));
      }
      if (clock::now() > deadline) {
        abort();
        fail("NCCL {}: rank {} of {} timed out after {} s (a rank exited or never joined; "
             "BERTRAZOR_DIST_TIMEOUT sets the limit)", what, rank, world, timeout_s);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  void abort() {
    if (comm && !aborted) ncclCommAbort(comm);
    aborted = true;
  }

  void check_usable(const char* what) const {
    BR_CHECK(!aborted, "NCCL {}: the communicator was aborted by an earlier failure", what);
  }

  // Orders the comm stream after the compute stream's work so far.
  void begin() {
    BR_CUDA_CHECK(cudaEventRecord(ready, cuda::stream()));
    BR_CUDA_CHECK(cudaStreamWaitEvent(stream, ready, 0));
  }
  // Orders the compute stream after the collective just enqueued.
  void end() {
    BR_CUDA_CHECK(cudaEventRecord(done, stream));
    BR_CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(), done, 0));
  }
};

NcclComm::NcclComm(Communicator& host, int rank, int world_size, double timeout_s)
    : s_(std::make_unique<State>()) {
  s_->rank = rank;
  s_->world = world_size;
  s_->timeout_s = timeout_s;
  ncclUniqueId id{};
  if (rank == 0) BR_NCCL_CHECK(ncclGetUniqueId(&id));
  host.host_broadcast(&id, sizeof id, 0);
  BR_CUDA_CHECK(cudaStreamCreateWithFlags(&s_->stream, cudaStreamNonBlocking));
  BR_CUDA_CHECK(cudaEventCreateWithFlags(&s_->ready, cudaEventDisableTiming));
  BR_CUDA_CHECK(cudaEventCreateWithFlags(&s_->done, cudaEventDisableTiming));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  BR_NCCL_CHECK(ncclCommInitRankConfig(&s_->comm, world_size, id, rank, &config));
  s_->settle("ncclCommInitRankConfig");
}

NcclComm::~NcclComm() {
  if (s_->comm) {
    if (s_->aborted) {
      // ncclCommAbort already released the communicator.
    } else if (cudaStreamSynchronize(s_->stream) == cudaSuccess) {
      ncclCommFinalize(s_->comm);
      ncclResult_t state = ncclInProgress;
      const auto deadline = std::chrono::steady_clock::now() +
                            std::chrono::duration<double>(s_->timeout_s);
      while (ncclCommGetAsyncError(s_->comm, &state) == ncclSuccess && state == ncclInProgress &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      if (state == ncclSuccess) ncclCommDestroy(s_->comm);
      else ncclCommAbort(s_->comm);
    } else {
      ncclCommAbort(s_->comm);
    }
  }
  if (s_->done) cudaEventDestroy(s_->done);
  if (s_->ready) cudaEventDestroy(s_->ready);
  if (s_->stream) cudaStreamDestroy(s_->stream);
}

void NcclComm::all_reduce_sum(const Tensor& t, bool async) {
  s_->check_usable("all_reduce_sum");
  BR_CHECK(t.is_cuda(), "NCCL all_reduce_sum: {} is not a CUDA tensor", t.str());
  s_->begin();
  BR_NCCL_CHECK(ncclAllReduce(t.raw(), t.raw(), size_t(t.numel()), nccl_type(t.dtype()), ncclSum,
                              s_->comm, s_->stream));
  s_->settle("ncclAllReduce");
  if (!async) s_->end();
}

void NcclComm::join() {
  s_->check_usable("join");
  s_->end();
}

void NcclComm::broadcast(const Tensor& t, int root) {
  s_->check_usable("broadcast");
  BR_CHECK(t.is_cuda(), "NCCL broadcast: {} is not a CUDA tensor", t.str());
  s_->begin();
  BR_NCCL_CHECK(ncclBroadcast(t.raw(), t.raw(), t.nbytes(), ncclUint8, root, s_->comm, s_->stream));
  s_->settle("ncclBroadcast");
  s_->end();
}

void NcclComm::synchronize() {
  s_->check_usable("synchronize");
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::duration<double>(s_->timeout_s);
  for (;;) {
    cudaError_t e = cudaStreamQuery(s_->stream);
    if (e == cudaSuccess) break;
    BR_CHECK(e == cudaErrorNotReady, "NCCL synchronize: CUDA error {} ({})", int(e),
             cudaGetErrorString(e));
    ncclResult_t state = ncclSuccess;
    BR_NCCL_CHECK(ncclCommGetAsyncError(s_->comm, &state));
    if (state != ncclSuccess && state != ncclInProgress) {
      s_->abort();
      fail("NCCL synchronize: rank {} failed: {}", s_->rank, ncclGetErrorString(state));
    }
    if (clock::now() > deadline) {
      s_->abort();
      fail("NCCL synchronize: rank {} of {} timed out after {} s waiting for collectives (a rank "
           "exited or never joined; BERTRAZOR_DIST_TIMEOUT sets the limit)",
           s_->rank, s_->world, s_->timeout_s);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

#else

bool nccl_built() { return false; }

struct NcclComm::State {};

NcclComm::NcclComm(Communicator&, int, int, double) {
  fail("NCCL: bertrazor was built without NCCL");
}
NcclComm::~NcclComm() = default;
void NcclComm::all_reduce_sum(const Tensor&, bool) { fail("NCCL: built without NCCL"); }
void NcclComm::join() {}
void NcclComm::broadcast(const Tensor&, int) { fail("NCCL: built without NCCL"); }
void NcclComm::synchronize() {}

#endif

}  // namespace br
