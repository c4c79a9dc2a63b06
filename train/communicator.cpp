#include "train/communicator.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/text.h"
#include "kernels/cast.h"
#include "kernels/grad_norm.h"
#include "train/comm_nccl.h"

#if BERTRAZOR_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace br {

double dist_timeout_seconds() {
  const char* v = std::getenv("BERTRAZOR_DIST_TIMEOUT");
  if (!v || !*v) return 300.0;
  std::optional<double> s = to_double(v);
  BR_CHECK(s && std::isfinite(*s) && *s > 0,
           "BERTRAZOR_DIST_TIMEOUT='{}': expected a positive number of seconds", v);
  return *s;
}

Communicator::Communicator(int rank, int world_size, int local_rank, int local_world_size,
                           double timeout_s)
    : rank_(rank),
      world_size_(world_size),
      local_rank_(local_rank),
      local_world_size_(local_world_size),
      timeout_s_(timeout_s) {
  BR_CHECK(world_size >= 1 && rank >= 0 && rank < world_size,
           "Communicator: rank {} outside world of size {}", rank, world_size);
  BR_CHECK(local_world_size >= 1 && local_rank >= 0 && local_rank < local_world_size,
           "Communicator: local rank {} outside local world of size {}", local_rank,
           local_world_size);
}

Communicator::~Communicator() = default;

std::string Communicator::backend() const { return transport() + (nccl_ ? "+nccl" : ""); }

void Communicator::enable_nccl() {
  if (nccl_ || !nccl_built()) return;
  nccl_ = std::make_unique<NcclComm>(*this, rank_, world_size_, timeout_s_);
}

static bool host_reducible(DType d) {
  return d == DType::f32 || d == DType::f64 || d == DType::i32 || d == DType::i64;
}

static void check_reducible(const char* op, const Tensor& t) {
  check_defined(op, "t", t);
  BR_CHECK(host_reducible(t.dtype()) || t.dtype() == DType::bf16 || t.dtype() == DType::f16,
           "{}: cannot sum {} (f32, f64, i32, i64, bf16, f16 only)", op, t.str());
}

// Host tensor, summed over ranks; 16-bit floats are widened to f32 and rounded once at the end.
void Communicator::reduce_host_tensor(const Tensor& t) {
  if (host_reducible(t.dtype())) return host_all_reduce_sum(t.raw(), t.numel(), t.dtype());
  Tensor wide = cast(t, DType::f32, MemCategory::workspace);
  host_all_reduce_sum(wide.raw(), wide.numel(), DType::f32);
  cast(t, wide);
}

void Communicator::reduce_one(const Tensor& t, bool async) {
  if (t.numel() == 0 || world_size_ == 1) return;
  if (t.device() == Device::cpu) return reduce_host_tensor(t);
  if (nccl_) return nccl_->all_reduce_sum(t, async);
  Tensor host = t.to(Device::cpu, MemCategory::workspace);
  reduce_host_tensor(host);
  t.copy_from(host);
}

void Communicator::all_reduce_sum(const Tensor& t) {
  check_reducible("all_reduce_sum", t);
  reduce_one(t);
}

void Communicator::all_reduce_sum_async(const Tensor& t) {
  check_reducible("all_reduce_sum_async", t);
  reduce_one(t, true);
}

void Communicator::join() {
  if (nccl_) nccl_->join();
}

void Communicator::all_reduce_sum(const std::vector<Tensor>& ts, size_t bucket_bytes) {
  BR_CHECK(bucket_bytes > 0, "all_reduce_sum: bucket_bytes must be positive");
  for (const Tensor& t : ts) check_reducible("all_reduce_sum", t);
  if (world_size_ == 1) return;
  size_t i = 0;
  while (i < ts.size()) {
    const Tensor& first = ts[i];
    if (first.nbytes() >= bucket_bytes) {
      reduce_one(first);
      ++i;
      continue;
    }
    size_t j = i, bytes = 0;
    while (j < ts.size() && ts[j].dtype() == first.dtype() && ts[j].device() == first.device() &&
           bytes + ts[j].nbytes() <= bucket_bytes) {
      bytes += ts[j].nbytes();
      ++j;
    }
    if (j == i + 1) {
      reduce_one(first);
      i = j;
      continue;
    }
    int64_t n = 0;
    for (size_t k = i; k < j; ++k) n += ts[k].numel();
    Tensor bucket = Tensor::empty({n}, first.dtype(), first.device(), MemCategory::workspace);
    int64_t off = 0;
    for (size_t k = i; k < j; ++k) {
      bucket.rows(off, off + ts[k].numel()).copy_from(ts[k].flat());
      off += ts[k].numel();
    }
    reduce_one(bucket);
    off = 0;
    for (size_t k = i; k < j; ++k) {
      ts[k].flat().copy_from(bucket.rows(off, off + ts[k].numel()));
      off += ts[k].numel();
    }
    i = j;
  }
}

void Communicator::average_gradients(const std::vector<Tensor>& grads, size_t bucket_bytes) {
  for (const Tensor& g : grads) {
    check_reducible("average_gradients", g);
    BR_CHECK(is_floating(g.dtype()), "average_gradients: gradient {} is not floating point",
             g.str());
  }
  if (world_size_ == 1) return;
  all_reduce_sum(grads, bucket_bytes);
  for (const Tensor& g : grads) divide_by_world_size(g);
  synchronize();
}

void Communicator::divide_by_world_size(const Tensor& t) const {
  if (world_size_ == 1 || t.numel() == 0) return;
  // Divides (not multiplies by 1/W) on the CPU, so the result is what a division of the sum gives.
  if (t.device() == Device::cpu && t.dtype() == DType::f64) {
    double* p = t.data<double>();
    for (int64_t k = 0; k < t.numel(); ++k) p[k] /= double(world_size_);
  } else if (t.device() == Device::cpu && t.dtype() == DType::f32) {
    float* p = t.data<float>();
    for (int64_t k = 0; k < t.numel(); ++k) p[k] /= float(world_size_);
  } else {
    scale_(t, float(1.0 / world_size_));
  }
}

void Communicator::broadcast(const Tensor& t, int root) {
  check_defined("broadcast", "t", t);
  BR_CHECK(root >= 0 && root < world_size_, "broadcast: root {} outside world of size {}", root,
           world_size_);
  if (world_size_ == 1 || t.numel() == 0) return;
  if (t.device() == Device::cpu) return host_broadcast(t.raw(), t.nbytes(), root);
  if (nccl_) return nccl_->broadcast(t, root);
  Tensor host = t.to(Device::cpu, MemCategory::workspace);
  host_broadcast(host.raw(), host.nbytes(), root);
  t.copy_from(host);
}

void Communicator::barrier() {
  synchronize();
  if (world_size_ > 1) host_barrier();
}

void Communicator::synchronize() {
  if (nccl_) nccl_->synchronize();
}

double Communicator::all_reduce_sum(double x) {
  if (world_size_ > 1) host_all_reduce_sum(&x, 1, DType::f64);
  return x;
}

std::vector<std::string> Communicator::all_gather_bytes(const std::string& local) {
  if (world_size_ == 1) return {local};
  std::vector<int64_t> sizes(static_cast<size_t>(world_size_));
  int64_t mine = int64_t(local.size());
  host_all_gather(&mine, sizeof(int64_t), sizes.data());
  int64_t longest = *std::max_element(sizes.begin(), sizes.end());
  std::string send(size_t(longest), '\0');
  std::memcpy(send.data(), local.data(), local.size());
  std::string recv(size_t(longest) * size_t(world_size_), '\0');
  if (longest > 0) host_all_gather(send.data(), size_t(longest), recv.data());
  std::vector<std::string> out(static_cast<size_t>(world_size_));
  for (int r = 0; r < world_size_; ++r)
    out[size_t(r)] = recv.substr(size_t(r) * size_t(longest), size_t(sizes[size_t(r)]));
  return out;
}

std::vector<double> Communicator::all_gather(const std::vector<double>& local) {
  std::string bytes(local.size() * sizeof(double), '\0');
  std::memcpy(bytes.data(), local.data(), bytes.size());
  std::vector<double> out;
  for (const std::string& b : all_gather_bytes(bytes)) {
    size_t k = out.size();
    out.resize(k + b.size() / sizeof(double));
    std::memcpy(out.data() + k, b.data(), b.size());
  }
  return out;
}

static std::string clip(const std::string& s) {
  return s.size() <= 200 ? s : s.substr(0, 200) + fmt::format("... ({} bytes)", s.size());
}

void Communicator::check_consistent(const std::string& what, const std::string& value) {
  std::vector<std::string> all = all_gather_bytes(value);
  std::string msg;
  for (int r = 1; r < world_size_; ++r) {
    const std::string& v = all[size_t(r)];
    if (v == all[0]) continue;
    size_t at = 0;
    while (at < v.size() && at < all[0].size() && v[at] == all[0][at]) ++at;
    msg += fmt::format("\n  rank {} has '{}' (first difference at byte {})", r, clip(v), at);
  }
  BR_CHECK(msg.empty(), "check_consistent({}): ranks disagree with rank 0, which has '{}':{}", what,
           clip(all[0]), msg);
}

// ---- single process ----

namespace {

class SingleCommunicator final : public Communicator {
 public:
  SingleCommunicator() : Communicator(0, 1, 0, 1, dist_timeout_seconds()) {}

 protected:
  std::string transport() const override { return "single"; }
  void host_all_reduce_sum(void*, int64_t, DType) override {}
  void host_broadcast(void*, size_t, int) override {}
  void host_all_gather(const void* send, size_t bytes, void* recv) override {
    std::memcpy(recv, send, bytes);
  }
  void host_barrier() override {}
};

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    BR_CHECK(fallback >= 0, "distributed launch: environment variable {} is not set", name);
    return fallback;
  }
  std::optional<int64_t> x = to_int(v);
  BR_CHECK(x && *x >= 0 && *x < (int64_t(1) << 30), "distributed launch: {}='{}' is not a "
           "non-negative integer", name, v);
  return int(*x);
}

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

}  // namespace

std::unique_ptr<Communicator> make_single_communicator() {
  return std::make_unique<SingleCommunicator>();
}

TcpOptions tcp_options_from_env() {
  TcpOptions o;
  o.rank = env_int("RANK", -1);
  o.world_size = env_int("WORLD_SIZE", -1);
  o.local_rank = env_int("LOCAL_RANK", o.rank);
  o.local_world_size = env_int("LOCAL_WORLD_SIZE", o.world_size);
  if (env_set("MASTER_ADDR")) o.master_addr = std::getenv("MASTER_ADDR");
  o.master_port = env_int("MASTER_PORT", 29500);
  BR_CHECK(o.master_port > 0 && o.master_port < 65536, "MASTER_PORT={} is not a TCP port",
           o.master_port);
  o.timeout_s = dist_timeout_seconds();
  return o;
}

static void select_cuda_device(int local_rank) {
#if BERTRAZOR_WITH_CUDA
  int n = cuda_device_count();
  BR_CHECK(n > 0, "make_communicator: device cuda requested but no CUDA device answers");
  BR_CUDA_CHECK(cudaSetDevice(local_rank % n));
#else
  fail("make_communicator: device cuda requested in a build without CUDA");
#endif
}

std::unique_ptr<Communicator> make_communicator(Device device) {
  const bool cuda = device == Device::cuda;
  if (env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMI_SIZE") || env_set("PMIX_RANK")) {
    if (cuda) {
      int local = env_set("OMPI_COMM_WORLD_LOCAL_RANK") ? env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0)
                  : env_set("MPI_LOCALRANKID")          ? env_int("MPI_LOCALRANKID", 0)
                                                        : env_int("PMI_LOCAL_RANK", 0);
      select_cuda_device(local);
    }
    return make_mpi_communicator(cuda);
  }
  if (env_set("RANK") || env_set("WORLD_SIZE")) {
    TcpOptions o = tcp_options_from_env();
    if (cuda) select_cuda_device(o.local_rank);
    return make_tcp_communicator(o, cuda);
  }
  if (cuda) select_cuda_device(0);
  return make_single_communicator();
}

}  // namespace br
