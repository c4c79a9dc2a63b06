#include "core/device.h"

#include "core/error.h"

#if BERTRAZOR_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace br {

std::string_view device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

Device device_from_name(std::string_view name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  fail("unknown device '{}' (expected cpu or cuda)", name);
}

bool cuda_built() { return BERTRAZOR_WITH_CUDA != 0; }

int cuda_device_count() {
#if BERTRAZOR_WITH_CUDA
  static int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // no driver or no device: clear the sticky error, report none
      return 0;
    }
    return n;
  }();
  return count;
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

void cuda_synchronize() {
#if BERTRAZOR_WITH_CUDA
  if (cuda_available()) BR_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
#endif
}

#if BERTRAZOR_WITH_CUDA
namespace cuda {

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st;
    BR_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle;
    BR_CUBLAS_CHECK(cublasCreate(&handle));
    BR_CUBLAS_CHECK(cublasSetStream(handle, stream()));
    return handle;
  }();
  return h;
}

cublasLtHandle_t cublaslt() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t handle;
    BR_CUBLAS_CHECK(cublasLtCreate(&handle));
    return handle;
  }();
  return h;
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

}  // namespace cuda
#endif

}  // namespace br
