#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace br::cuda {

// out[M,N] = inp[M,K] · weight[N,K]ᵀ + bias[N] as one cuBLASLt call with the BIAS epilogue.
// Returns false (having done nothing) when cuBLASLt offers no algorithm for these operands.
bool linear_forward_bias_epilogue(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                  const Tensor& bias, int64_t M, int64_t N, int64_t K, bool tf32);

}  // namespace br::cuda
