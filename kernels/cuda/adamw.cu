#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// One tensor of the multi-tensor launch; blocks [first_block, next tensor's first_block) own it.
struct AdamWTensor {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  int64_t first_block;
  int decay;
};

constexpr int kThreads = 256, kPerThread = 8, kChunk = kThreads * kPerThread;

__device__ __forceinline__ float lerp(float self, float end, float w) {
  return fabsf(w) < 0.5f ? fmaf(w, end - self, self) : fmaf(w - 1.0f, end - self, end);
}

// Block b finds its tensor by binary search over first_block, then updates one chunk of it.
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(const AdamWTensor* tensors, int count, AdamWScalars s) {
  const int64_t block = blockIdx.x;
  const AdamWTensor t = tensors[owning_entry(tensors, count, block)];
  const int64_t begin = (block - t.first_block) * kChunk;
  const int64_t end = min(begin + kChunk, t.n);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const float gi = t.g[i];
    const float vi = t.v[i] * s.beta2 + (s.w2 * gi) * gi;
    t.v[i] = vi;
    if (s.hf) {
      const float mi = t.m[i] * s.beta1 + s.w1 * gi;
      t.m[i] = mi;
      float pi = t.p[i] + __fdiv_rn(s.neg_step * mi, sqrtf(vi) + s.eps);
      if (t.decay && s.hf_decay != 0.0f) pi = pi + s.hf_decay * pi;
      t.p[i] = pi;
    } else {
      const float mi = lerp(t.m[i], gi, s.w1);
      t.m[i] = mi;
      const float pi = t.decay ? t.p[i] * s.decay : t.p[i];
      t.p[i] = pi + __fdiv_rn(s.neg_step * mi, __fdiv_rn(sqrtf(vi), s.bc2_sqrt) + s.eps);
    }
  }
}

}  // namespace

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& ms, const std::vector<Tensor>& vs,
                const std::vector<bool>& decay, const AdamWScalars& s) {
  std::vector<AdamWTensor> table;
  int64_t blocks = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t n = params[i].numel();
    if (n == 0) continue;
    table.push_back(AdamWTensor{params[i].data<float>(), grads[i].data<float>(), ms[i].data<float>(),
                                vs[i].data<float>(), n, blocks, decay[i] ? 1 : 0});
    blocks += (n + kChunk - 1) / kChunk;
  }
  if (table.empty()) return;
  BR_CHECK(blocks <= int64_t(INT32_MAX), "adamw_step: {} blocks exceed the grid limit", blocks);
  const Tensor dev = device_table(table);
  adamw_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(
      static_cast<const AdamWTensor*>(dev.raw()), int(table.size()), s);
  BR_KERNEL_CHECK("adamw_step");
}

}  // namespace br::cuda
