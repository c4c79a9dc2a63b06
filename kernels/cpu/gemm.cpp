#include "kernels/cpu/cpu_ops.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics for Eigen's
// kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

namespace br::cpu {

namespace {

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Eigen recognises alpha * X * Y over mapped (possibly transposed) operands as one GEMM call with
// the scale folded in, writing straight into C: no temporaries.
template <typename T, typename OpA, typename OpB>
void product(Eigen::Map<RowMajor<T>>& C, const OpA& a, const OpB& b, T alpha, T beta) {
  if (beta == T(0)) {
    C.noalias() = alpha * a * b;
  } else {
    if (beta != T(1)) C *= beta;
    C.noalias() += alpha * a * b;
  }
}

template <typename T>
void gemm_one(T* c, const T* a, bool ta, const T* b, bool tb, int64_t M, int64_t N, int64_t K,
              T alpha, T beta) {
  Eigen::Map<RowMajor<T>> C(c, M, N);
  Eigen::Map<const RowMajor<T>> A(a, ta ? K : M, ta ? M : K);
  Eigen::Map<const RowMajor<T>> B(b, tb ? N : K, tb ? K : N);
  if (!ta && !tb)
    product(C, A, B, alpha, beta);
  else if (!ta && tb)
    product(C, A, B.transpose(), alpha, beta);
  else if (ta && !tb)
    product(C, A.transpose(), B, alpha, beta);
  else
    product(C, A.transpose(), B.transpose(), alpha, beta);
}

// Below this many multiply-adds (about 0.1 ms on one core) a lone product runs on the calling
// thread. Eigen threads any product of more than ~50k multiply-adds per thread, and at batch 1 or
// short sequences the fork, its barrier and (under OMP_WAIT_POLICY=PASSIVE or a busy machine) the
// wake-up of the second thread cost more than they save.
constexpr int64_t kSerialMacs = int64_t(1) << 23;

// f32 goes to oneDNN's sgemm (chosen by measurement over Eigen, OpenBLAS and BLIS: docs/RESULTS.md,
// "GEMM libraries on every product of the step"); it runs with omp_get_max_threads() threads, or
// one inside a parallel region. f64 (the gradient checks) stays with Eigen: oneDNN has no dgemm.
void gemm_one(float* c, const float* a, bool ta, const float* b, bool tb, int64_t M, int64_t N,
              int64_t K, float alpha, float beta) {
  const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, a,
                                      ta ? M : K, b, tb ? K : N, beta, c, N);
  if (st != dnnl_success)
    fail("matmul: dnnl_sgemm failed (status {}) on M={} N={} K={}", int(st), M, N, K);
}

// The calling thread's OpenMP thread count set to 1 for one scope (oneDNN and Eigen both read
// omp_get_max_threads(); this ICV is per thread, so other threads are unaffected).
struct SerialScope {
  int saved = omp_get_max_threads();
  SerialScope() {
    omp_set_num_threads(1);
    Eigen::setNbThreads(1);
  }
  ~SerialScope() {
    omp_set_num_threads(saved);
    Eigen::setNbThreads(0);
  }
};

// Large products are threaded inside the library; many small ones (attention heads) are spread
// over the batch instead, one library call per thread; a small lone product runs on the calling
// thread. Which thread computes which output never changes the bits (the libraries split M and
// N, not K, for these shapes: tests/kernels/test_gemm.cpp checks 1 against 2 threads).
template <typename T>
void gemm_batched(T* c, const T* a, bool ta, const T* b, bool tb, int64_t batch, int64_t M,
                  int64_t N, int64_t K, T alpha, T beta) {
  const int64_t sa = M * K, sb = K * N, sc = M * N;
  const bool over_batch = batch > 1 && M * N * K < (int64_t(1) << 21);
  if (!over_batch && M * N * K < kSerialMacs && !omp_in_parallel()) {
    SerialScope serial;
    for (int64_t g = 0; g < batch; ++g)
      gemm_one(c + g * sc, a + g * sa, ta, b + g * sb, tb, M, N, K, alpha, beta);
    return;
  }
#pragma omp parallel for schedule(static) if (over_batch)
  for (int64_t g = 0; g < batch; ++g)
    gemm_one(c + g * sc, a + g * sa, ta, b + g * sb, tb, M, N, K, alpha, beta);
}

}  // namespace

void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  switch (C.dtype()) {
    case DType::f32:
      return gemm_batched(C.data<float>(), A.data<float>(), transA, B.data<float>(), transB, batch,
                          M, N, K, alpha, beta);
    case DType::f64:
      return gemm_batched(C.data<double>(), A.data<double>(), transA, B.data<double>(), transB,
                          batch, M, N, K, double(alpha), double(beta));
    default:
      fail("matmul: CPU supports f32 and f64, got C {}", C.str());
  }
}

}  // namespace br::cpu
