// CUDA-only helpers: every CUDA / cuBLAS / cuBLASLt return code is checked, with file and line.
// Include only from files compiled with BERTRAZOR_WITH_CUDA.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace br::cuda {

cudaStream_t stream();             // the library's compute stream (created on first use)
cublasHandle_t cublas();           // bound to stream()
cublasLtHandle_t cublaslt();
const char* cublas_status_name(cublasStatus_t s);

// Blocks for a 1-D launch of n threads, `block` per block.
inline unsigned grid_1d(int64_t n, int block = 256) {
  int64_t g = (n + block - 1) / block;
  return unsigned(g < 1 ? 1 : g);
}

}  // namespace br::cuda

#define BR_CUDA_CHECK(expr)                                                                  \
  do {                                                                                       \
    cudaError_t _e = (expr);                                                                 \
    if (_e != cudaSuccess)                                                                   \
      ::br::fail("CUDA error {} ({}) at {}:{}: {}", int(_e), cudaGetErrorString(_e), __FILE__, \
                 __LINE__, #expr);                                                           \
  } while (0)

#define BR_CUBLAS_CHECK(expr)                                                              \
  do {                                                                                     \
    cublasStatus_t _s = (expr);                                                            \
    if (_s != CUBLAS_STATUS_SUCCESS)                                                       \
      ::br::fail("cuBLAS error {} at {}:{}: {}", ::br::cuda::cublas_status_name(_s), __FILE__, \
                 __LINE__, #expr);                                                         \
  } while (0)

// After every kernel launch.
#define BR_KERNEL_CHECK(name)                                                              \
  do {                                                                                     \
    cudaError_t _e = cudaGetLastError();                                                   \
    if (_e != cudaSuccess)                                                                 \
      ::br::fail("{}: kernel launch failed: {} at {}:{}", name, cudaGetErrorString(_e),    \
                 __FILE__, __LINE__);                                                      \
  } while (0)
