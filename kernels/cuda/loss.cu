#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

constexpr int kWarps = 8;  // 256-thread blocks

// logsumexp of row z[0..C) by one warp (every lane gets the result)
template <typename T>
__device__ float warp_logsumexp(const T* z, int C, int lane) {
  float mx = -INFINITY;
  for (int c = lane; c < C; c += 32) mx = fmaxf(mx, to_f(z[c]));
  mx = warp_max(mx);
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += expf(to_f(z[c]) - mx);
  return mx + logf(warp_sum(s));
}

// One block; warp w takes rows w, w+8, ...: loss = (1/B) Σ_b (logsumexp(z_b) − z_b[y_b]).
// Row losses summed in double per warp, then warps in order (deterministic).
template <typename T>
__global__ void cross_entropy_forward_kernel(float* loss, const T* logits, const int32_t* labels,
                                             int64_t B, int C, int32_t* err) {
  __shared__ double part[kWarps];
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  double acc = 0.0;
  for (int64_t b = w; b < B; b += kWarps) {
    const T* z = logits + b * C;
    const float lse = warp_logsumexp(z, C, lane);
    const int32_t y = labels[b];
    if (y < 0 || y >= C) {
      if (lane == 0) report_bad_input(err, y, b);
      continue;
    }
    acc += double(lse) - double(to_f(z[y]));
  }
  if (lane == 0) part[w] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int j = 0; j < kWarps; ++j) s += part[j];
    // A bad label (reported in err, visible here after the barrier) leaves NaN, not a partial sum.
    loss[0] = *static_cast<volatile int32_t*>(err) ? NAN : float(s / double(B));
  }
}

// One warp per row: dz = dloss·(softmax(z) − onehot(y))/B
template <typename T>
__global__ void cross_entropy_backward_kernel(T* dlogits, const T* logits, const int32_t* labels,
                                              float dloss, int64_t B, int C, int32_t* err) {
  const int64_t b = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (b >= B) return;
  const T* z = logits + b * C;
  const int32_t y = labels[b];
  if (y < 0 || y >= C) {
    if (lane == 0) report_bad_input(err, y, b);
    for (int c = lane; c < C; c += 32) dlogits[b * C + c] = from_f<T>(NAN);  // not stale values
    return;
  }
  const float lse = warp_logsumexp(z, C, lane);
  const float k = dloss / float(B);
  for (int c = lane; c < C; c += 32)
    dlogits[b * C + c] = from_f<T>(k * (expf(to_f(z[c]) - lse) - (c == y ? 1.0f : 0.0f)));
}

// One block: loss = (1/B) Σ (p − t)², per-thread double sums then a fixed-order tree.
template <typename T, typename U>
__global__ void mse_forward_kernel(float* loss, const T* preds, const U* targets, int64_t B) {
  __shared__ double part[256];
  double acc = 0.0;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) {
    const double d = double(to_f(preds[b])) - double(to_f(targets[b]));
    acc += d * d;
  }
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = float(part[0] / double(B));
}

// dp = dloss·2(p − t)/B
template <typename T, typename U>
__global__ void mse_backward_kernel(T* dpreds, const T* preds, const U* targets, float k, int64_t B) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B;
       b += int64_t(gridDim.x) * blockDim.x)
    dpreds[b] = from_f<T>(k * (to_f(preds[b]) - to_f(targets[b])));
}

void throw_if_bad(const char* op, const Tensor& err, int64_t C) {
  const std::vector<int32_t> e = err.to_vector<int32_t>();
  BR_CHECK(e[0] == 0, "{}: label {} in row {} is outside [0, C={})", op, e[1], e[2], C);
}

// Calls f(T{}, U{}) for preds dtype T and targets dtype U (f32, or the preds dtype).
template <typename F>
void dispatch_regression(const char* op, const Tensor& preds, const Tensor& targets, F&& f) {
  dispatch_f32_bf16(op, preds, [&](auto tag) {
    using T = decltype(tag);
    if (targets.dtype() == DType::f32) return f(T{}, float{});
    if (targets.dtype() == preds.dtype()) return f(T{}, T{});
    fail("{}: targets {} must be f32 or {}", op, targets.str(), preds.str());
  });
}

}  // namespace

void cross_entropy_forward(const Tensor& loss, const Tensor& logits, const Tensor& labels) {
  const int64_t B = logits.size(0), C = logits.size(1);
  BR_CHECK(C < (int64_t(1) << 31) && B < (int64_t(1) << 31), "cross_entropy_forward: {} too large",
           logits.str());
  Tensor err = Tensor::zeros({3}, DType::i32, Device::cuda, MemCategory::workspace);
  dispatch_f32_bf16("cross_entropy_forward", logits, [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_forward_kernel<T><<<1, 32 * kWarps, 0, stream()>>>(
        loss.data<float>(), static_cast<const T*>(logits.raw()), labels.data<int32_t>(), B, int(C),
        err.data<int32_t>());
  });
  BR_KERNEL_CHECK("cross_entropy_forward");
  throw_if_bad("cross_entropy_forward", err, C);
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                            float dloss) {
  const int64_t B = logits.size(0), C = logits.size(1);
  BR_CHECK(C < (int64_t(1) << 31) && B < (int64_t(1) << 31), "cross_entropy_backward: {} too large",
           logits.str());
  Tensor err = Tensor::zeros({3}, DType::i32, Device::cuda, MemCategory::workspace);
  dispatch_f32_bf16("cross_entropy_backward", logits, [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_backward_kernel<T><<<unsigned((B + kWarps - 1) / kWarps), 32 * kWarps, 0,
                                       stream()>>>(
        static_cast<T*>(dlogits.raw()), static_cast<const T*>(logits.raw()),
        labels.data<int32_t>(), dloss, B, int(C), err.data<int32_t>());
  });
  BR_KERNEL_CHECK("cross_entropy_backward");
  throw_if_bad("cross_entropy_backward", err, C);
}

void mse_forward(const Tensor& loss, const Tensor& preds, const Tensor& targets) {
  const int64_t B = preds.numel();
  dispatch_regression("mse_forward", preds, targets, [&](auto ptag, auto ttag) {
    using T = decltype(ptag);
    using U = decltype(ttag);
    mse_forward_kernel<T, U><<<1, 256, 0, stream()>>>(loss.data<float>(),
                                                      static_cast<const T*>(preds.raw()),
                                                      static_cast<const U*>(targets.raw()), B);
  });
  BR_KERNEL_CHECK("mse_forward");
}

void mse_backward(const Tensor& dpreds, const Tensor& preds, const Tensor& targets, float dloss) {
  const int64_t B = preds.numel();
  dispatch_regression("mse_backward", preds, targets, [&](auto ptag, auto ttag) {
    using T = decltype(ptag);
    using U = decltype(ttag);
    mse_backward_kernel<T, U><<<grid_stride_blocks(B), 256, 0, stream()>>>(
        static_cast<T*>(dpreds.raw()), static_cast<const T*>(preds.raw()),
        static_cast<const U*>(targets.raw()), 2.0f * dloss / float(B), B);
  });
  BR_KERNEL_CHECK("mse_backward");
}

}  // namespace br::cuda
