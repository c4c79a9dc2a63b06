#include <algorithm>
#include <vector>

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// One block per row m: out[m, :] (=|+=) table[ids[m], :]; a bad id raises the flag and skips the row.
template <typename T, typename E>
__global__ void embedding_forward_kernel(T* out, const int32_t* ids, const E* table, bool accumulate,
                                         int64_t M, int64_t V, int H, int32_t* err) {
  const int64_t m = blockIdx.x;
  const int32_t id = ids[m];
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0) report_bad_input(err, id, m);
    return;
  }
  const E* src = table + int64_t(id) * H;
  T* dst = out + m * H;
  for (int h = threadIdx.x; h < H; h += blockDim.x)
    dst[h] = from_f<T>(accumulate ? to_f(dst[h]) + to_f(src[h]) : to_f(src[h]));
}

__global__ void check_ids_kernel(const int32_t* ids, int64_t M, int64_t V, int32_t* err) {
  for (int64_t m = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; m < M;
       m += int64_t(gridDim.x) * blockDim.x)
    if (ids[m] < 0 || ids[m] >= V) report_bad_input(err, ids[m], m);
}

__global__ void iota_kernel(int32_t* v, int64_t M) {
  for (int64_t m = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; m < M;
       m += int64_t(gridDim.x) * blockDim.x)
    v[m] = int32_t(m);
}

// One block per unique id u (ids sorted stably, so each run lists its positions in increasing m):
// dtable[id_u, h] += Σ_{j in run u} dout[pos[j], h], summed in that fixed order (deterministic,
// no atomics; a hot id such as [PAD] is one block's serial sum instead of contended atomics).
template <typename T>
__global__ void embedding_backward_kernel(float* dtable, const T* dout, const uint32_t* unique_ids,
                                          const int32_t* run_offsets, const int32_t* run_counts,
                                          const int32_t* num_runs, const int32_t* positions, int H) {
  const int u = blockIdx.x;
  if (u >= *num_runs) return;
  const int64_t id = unique_ids[u];
  const int32_t j0 = run_offsets[u], j1 = j0 + run_counts[u];
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    float acc = 0.0f;
    for (int32_t j = j0; j < j1; ++j) acc += to_f(dout[int64_t(positions[j]) * H + h]);
    dtable[id * H + h] += acc;
  }
}

// Reads back the flag; throws naming the bad id, its position and V.
void throw_if_bad(const char* op, const Tensor& err, int64_t V) {
  const std::vector<int32_t> e = err.to_vector<int32_t>();
  BR_CHECK(e[0] == 0, "{}: id {} at position {} is outside [0, V={})", op, e[1], e[2], V);
}

int bits_for(int64_t V) {
  int b = 1;
  while (b < 32 && (int64_t(1) << b) < V) ++b;
  return b;
}

}  // namespace

void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table, bool accumulate) {
  const int64_t M = ids.numel(), V = table.size(0), H = table.size(1);
  BR_CHECK(M < (int64_t(1) << 31) && H < (int64_t(1) << 31),
           "embedding_forward: {} ids or H={} too large", M, H);
  Tensor err = Tensor::zeros({3}, DType::i32, Device::cuda, MemCategory::workspace);
  dispatch_f32_bf16("embedding_forward", out, [&](auto otag) {
    using T = decltype(otag);
    dispatch_f32_bf16("embedding_forward", table, [&](auto etag) {
      using E = decltype(etag);
      embedding_forward_kernel<T, E><<<unsigned(M), 128, 0, stream()>>>(
          static_cast<T*>(out.raw()), ids.data<int32_t>(), static_cast<const E*>(table.raw()),
          accumulate, M, V, int(H), err.data<int32_t>());
    });
  });
  BR_KERNEL_CHECK("embedding_forward");
  throw_if_bad("embedding_forward", err, V);
}

void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids) {
  const char* op = "embedding_backward";
  const int64_t M = ids.numel(), V = dtable.size(0), H = dtable.size(1);
  BR_CHECK(M < (int64_t(1) << 31) && H < (int64_t(1) << 31), "{}: {} ids or H={} too large", op, M,
           H);
  Tensor err = Tensor::zeros({3}, DType::i32, Device::cuda, MemCategory::workspace);
  check_ids_kernel<<<grid_stride_blocks(M), 256, 0, stream()>>>(ids.data<int32_t>(), M, V,
                                                                 err.data<int32_t>());
  BR_KERNEL_CHECK("embedding_backward (check ids)");
  throw_if_bad(op, err, V);

  auto ws = [](int64_t n) {
    return Tensor::empty({n}, DType::i32, Device::cuda, MemCategory::workspace);
  };
  Tensor pos_in = ws(M), pos = ws(M), keys = ws(M), uniq = ws(M), counts = ws(M), offsets = ws(M);
  Tensor nruns = ws(1);
  counts.zero_();  // entries past the number of runs are then defined for the offsets scan
  iota_kernel<<<grid_stride_blocks(M), 256, 0, stream()>>>(pos_in.data<int32_t>(), M);
  BR_KERNEL_CHECK("embedding_backward (iota)");

  const auto* k_in = static_cast<const uint32_t*>(ids.raw());
  auto* k_out = static_cast<uint32_t*>(keys.raw());
  auto* u_out = static_cast<uint32_t*>(uniq.raw());
  const int n = int(M), end_bit = bits_for(V);
  size_t b_sort = 0, b_rle = 0, b_scan = 0;
  BR_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, b_sort, k_in, k_out, pos_in.data<int32_t>(),
                                                pos.data<int32_t>(), n, 0, end_bit, stream()));
  BR_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(nullptr, b_rle, k_out, u_out,
                                                   counts.data<int32_t>(), nruns.data<int32_t>(), n,
                                                   stream()));
  BR_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, b_scan, counts.data<int32_t>(),
                                              offsets.data<int32_t>(), n, stream()));
  const size_t b_tmp = std::max({b_sort, b_rle, b_scan, size_t(1)});
  Tensor tmp = Tensor::empty({int64_t(b_tmp)}, DType::u8, Device::cuda, MemCategory::workspace);
  size_t b = b_tmp;
  BR_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp.raw(), b, k_in, k_out, pos_in.data<int32_t>(),
                                                pos.data<int32_t>(), n, 0, end_bit, stream()));
  b = b_tmp;
  BR_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(tmp.raw(), b, k_out, u_out,
                                                   counts.data<int32_t>(), nruns.data<int32_t>(), n,
                                                   stream()));
  b = b_tmp;
  BR_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(tmp.raw(), b, counts.data<int32_t>(),
                                              offsets.data<int32_t>(), n, stream()));
  dispatch_f32_bf16(op, dout, [&](auto tag) {
    using T = decltype(tag);
    embedding_backward_kernel<T><<<unsigned(M), 256, 0, stream()>>>(
        dtable.data<float>(), static_cast<const T*>(dout.raw()), u_out, offsets.data<int32_t>(),
        counts.data<int32_t>(), nruns.data<int32_t>(), pos.data<int32_t>(), int(H));
  });
  BR_KERNEL_CHECK(op);
}

}  // namespace br::cuda
