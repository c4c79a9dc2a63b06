// The CUDA backend, namespace br::cuda: the entry points of kernels/backend_ops.inc (the list both
// backends implement) plus the CUDA-only ones below. Each family's group is implemented in
// kernels/cuda/<family>.cu with the helpers of kernels/cuda/device_math.cuh; kernels run on
// stream() (core/cuda_check.h). Included by the dispatchers, under #if BERTRAZOR_WITH_CUDA, and by
// the .cu files.
#pragma once
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "core/tensor.h"
#include "kernels/adamw_scalars.h"
#include "kernels/sparse_pack.h"

namespace br::cuda {

#include "kernels/backend_ops.inc"

// gemm.h: row-major batched product through cuBLAS; f32 operands through TF32 when tf32 is set.
void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, float beta, bool tf32);

// linear.h: out[M,N] = inp[M,K] · weight[N,K]ᵀ + bias[N] as one cuBLASLt call with the BIAS
// epilogue. Returns false (having done nothing) when cuBLASLt offers no algorithm.
bool linear_forward_bias_epilogue(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                  const Tensor& bias, int64_t M, int64_t N, int64_t K, bool tf32);

}  // namespace br::cuda
