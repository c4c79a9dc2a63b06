#include <algorithm>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

// cuBLAS is column-major, and a row-major [R,C] buffer is the column-major [C,R] matrix, its
// transpose. So row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: call cuBLAS with the
// operands swapped, m = N, n = M, each keeping its own transpose flag. Leading dimensions are the
// row lengths of the stored row-major buffers.
void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, float beta, bool tf32) {
  const int lda = int(std::max<int64_t>(1, transA ? M : K));
  const int ldb = int(std::max<int64_t>(1, transB ? K : N));
  const int ldc = int(std::max<int64_t>(1, N));
  const cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasComputeType_t compute = cublas_compute(A, tf32);
  const cudaDataType_t typeA = cublas_type("matmul", A), typeB = cublas_type("matmul", B),
                       typeC = cublas_type("matmul", C);
  // alpha/beta are host floats: CUBLAS_COMPUTE_32F takes float scalars for every A/B/C type here.
  BR_CUBLAS_CHECK(cublasSetPointerMode(cublas(), CUBLAS_POINTER_MODE_HOST));
  if (batch == 1) {
    BR_CUBLAS_CHECK(cublasGemmEx(cublas(), opB, opA, int(N), int(M), int(K), &alpha, B.raw(),
                                 typeB, ldb, A.raw(), typeA, lda, &beta, C.raw(), typeC, ldc,
                                 compute, CUBLAS_GEMM_DEFAULT));
  } else {
    BR_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        cublas(), opB, opA, int(N), int(M), int(K), &alpha, B.raw(), typeB, ldb,
        (long long)(K * N), A.raw(), typeA, lda, (long long)(M * K), &beta, C.raw(), typeC, ldc,
        (long long)(M * N), int(batch), compute, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace br::cuda
