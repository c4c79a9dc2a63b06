#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace br::cuda {

// Row-major batched product through cuBLAS on stream(); shapes and dtypes checked by the caller.
void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, float beta, bool tf32);

}  // namespace br::cuda
