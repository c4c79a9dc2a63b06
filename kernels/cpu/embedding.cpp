#include "kernels/cpu/cpu_ops.h"

namespace br::cpu {

namespace {

void check_ids(const char* op, const int32_t* ids, int64_t M, int64_t V) {
  for (int64_t m = 0; m < M; ++m)
    BR_CHECK(ids[m] >= 0 && ids[m] < V, "{}: id {} at position {} is outside [0, V={})", op, ids[m],
             m, V);
}

// out[m, :] (=|+=) table[ids[m], :]
template <typename T>
void forward_impl(T* out, const int32_t* ids, const T* table, bool accumulate, int64_t M, int64_t H) {
#pragma omp parallel for if (M * H > (1 << 15))
  for (int64_t m = 0; m < M; ++m) {
    const T* src = table + int64_t(ids[m]) * H;
    T* dst = out + m * H;
    if (accumulate)
      for (int64_t h = 0; h < H; ++h) dst[h] += src[h];
    else
      for (int64_t h = 0; h < H; ++h) dst[h] = src[h];
  }
}

// dtable[ids[m], :] += dout[m, :], rows added in order of m (serial: rows may repeat)
template <typename T>
void backward_impl(T* dtable, const T* dout, const int32_t* ids, int64_t M, int64_t H) {
  for (int64_t m = 0; m < M; ++m) {
    T* dst = dtable + int64_t(ids[m]) * H;
    const T* src = dout + m * H;
    for (int64_t h = 0; h < H; ++h) dst[h] += src[h];
  }
}

}  // namespace

void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table, bool accumulate) {
  const int64_t M = ids.numel(), V = table.size(0), H = table.size(1);
  const int32_t* id = ids.data<int32_t>();
  check_ids("embedding_forward", id, M, V);
  switch (table.dtype()) {
    case DType::f32: return forward_impl(out.data<float>(), id, table.data<float>(), accumulate, M, H);
    case DType::f64:
      return forward_impl(out.data<double>(), id, table.data<double>(), accumulate, M, H);
    default: fail("embedding_forward: CPU supports f32 and f64, got {}", table.str());
  }
}

void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids) {
  const int64_t M = ids.numel(), V = dtable.size(0), H = dtable.size(1);
  const int32_t* id = ids.data<int32_t>();
  check_ids("embedding_backward", id, M, V);
  switch (dtable.dtype()) {
    case DType::f32: return backward_impl(dtable.data<float>(), dout.data<float>(), id, M, H);
    case DType::f64: return backward_impl(dtable.data<double>(), dout.data<double>(), id, M, H);
    default: fail("embedding_backward: CPU supports f32 and f64, got {}", dtable.str());
  }
}

}  // namespace br::cpu
