#include <cstdint>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLASLt's recommendation for Hopper

// The largest power of two, up to 256, that divides the address: cuBLASLt assumes 256 unless told.
uint32_t alignment(const void* p) {
  uint32_t a = 256;
  while (a > 1 && reinterpret_cast<uintptr_t>(p) % a != 0) a /= 2;
  return a;
}

// RAII for the cuBLASLt descriptors, so an exception between create and destroy leaks nothing.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descriptors() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

// Column-major view (see kernels/cuda/gemm.cu): the row-major out[M,N] is D = outᵀ, [N,M] with
// ld N; weight[N,K] row-major is [K,N] ld K, transposed gives [N,K]; inp[M,K] is [K,M] ld K.
// So D[N,M] = weightᵀ(op T)·inp(op N), and the BIAS epilogue adds bias[row of D] = bias[n].
bool linear_forward_bias_epilogue(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                  const Tensor& bias, int64_t M, int64_t N, int64_t K, bool tf32) {
  const cudaDataType_t type = cublas_type("linear_forward", inp);
  const cublasComputeType_t compute = cublas_compute(inp, tf32);
  Descriptors ds;
  BR_CUBLAS_CHECK(cublasLtMatmulDescCreate(&ds.op, compute, CUDA_R_32F));
  const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
  BR_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
  BR_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  BR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                 sizeof(epilogue)));
  const void* bias_ptr = bias.raw();
  BR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                 &bias_ptr, sizeof(bias_ptr)));
  const int32_t bias_type = type;
  BR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                 &bias_type, sizeof(bias_type)));
  BR_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.a, type, uint64_t(K), uint64_t(N), int64_t(K)));
  BR_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.b, type, uint64_t(K), uint64_t(M), int64_t(K)));
  BR_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ds.d, type, uint64_t(N), uint64_t(M), int64_t(N)));

  BR_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&ds.pref));
  const uint64_t ws = kWorkspaceBytes;
  BR_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  const uint32_t align_a = alignment(weight.raw()), align_b = alignment(inp.raw()),
                 align_d = alignment(out.raw());
  BR_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  BR_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  BR_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof(align_d)));
  BR_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)));

  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(cublaslt(), ds.op, ds.a, ds.b, ds.d,
                                                           ds.d, ds.pref, 1, &heuristic, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || found == 0) return false;
  BR_CUBLAS_CHECK(st);

  Tensor workspace =
      Tensor::empty({int64_t(kWorkspaceBytes)}, DType::u8, Device::cuda, MemCategory::workspace);
  const float alpha = 1.0f, beta = 0.0f;
  BR_CUBLAS_CHECK(cublasLtMatmul(cublaslt(), ds.op, &alpha, weight.raw(), ds.a, inp.raw(), ds.b,
                                 &beta, out.raw(), ds.d, out.raw(), ds.d, &heuristic.algo,
                                 workspace.raw(), kWorkspaceBytes, stream()));
  return true;
}

}  // namespace br::cuda
