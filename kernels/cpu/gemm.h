#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace br::cpu {

// One row-major product per batch entry: C[g] = alpha * op(A[g]) · op(B[g]) + beta * C[g].
void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, float beta);

}  // namespace br::cpu
