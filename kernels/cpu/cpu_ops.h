// The CPU reference backend, namespace br::cpu: the entry points of kernels/backend_ops.inc (the
// list both backends implement) plus the CPU form of matmul. Each family's group is implemented in
// kernels/cpu/<family>.cpp, templated on float and double. Included by the dispatchers and the
// kernels/cpu sources only.
#pragma once
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "core/tensor.h"
#include "kernels/adamw_scalars.h"
#include "kernels/sparse_pack.h"

namespace br::cpu {

#include "kernels/backend_ops.inc"

// gemm.h: one row-major product per batch entry, C[g] = alpha·op(A[g])·op(B[g]) + beta·C[g].
void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, float beta);
// f32 products with A and B rounded to bf16 and f32 accumulation (kernels/gemm.h).
void set_bf16_matmul(bool on);
bool bf16_matmul();
void set_bf16_matmul_fallback(bool on);
bool bf16_matmul_native();

// One row-major product with leading dimensions, on the calling thread when called inside a
// parallel region: C = alpha·op(A)·op(B) + beta·C, op(A) [M, K], op(B) [K, N]. f32 through
// oneDNN's sgemm (the matmul backend), f64 through Eigen. For kernels that multiply tiles inside
// their own parallel regions (attention): always f32, never rounded to bf16.
void gemm_tile(float* c, int64_t ldc, const float* a, int64_t lda, bool ta, const float* b,
               int64_t ldb, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta);
void gemm_tile(double* c, int64_t ldc, const double* a, int64_t lda, bool ta, const double* b,
               int64_t ldb, bool tb, int64_t M, int64_t N, int64_t K, double alpha, double beta);

}  // namespace br::cpu
