#include "kernels/gemm.h"
#include "kernels/profile.h"

#include <atomic>
#include <climits>

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {
std::atomic<bool> g_tf32{false};
}  // namespace

void set_cuda_tf32(bool on) { g_tf32 = on; }
bool cuda_tf32() { return g_tf32; }
void set_cpu_bf16_matmul(bool on) { cpu::set_bf16_matmul(on); }
bool cpu_bf16_matmul_native() { return cpu::bf16_matmul_native(); }
bool cpu_bf16_matmul() { return cpu::bf16_matmul(); }
void set_cpu_bf16_matmul_fallback(bool on) { cpu::set_bf16_matmul_fallback(on); }

void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            float alpha, float beta) {
  BR_PROFILE("matmul");
  check_defined("matmul", "C", C);
  check_defined("matmul", "A", A);
  check_defined("matmul", "B", B);
  const int64_t r = C.dim();
  BR_CHECK(r >= 2 && A.dim() == r && B.dim() == r,
           "matmul: A {}, B {}, C {} must all be 2-D, or batched with the same rank", A.str(),
           B.str(), C.str());
  int64_t batch = 1;
  for (int64_t i = 0; i < r - 2; ++i) {
    BR_CHECK(A.size(i) == C.size(i) && B.size(i) == C.size(i),
             "matmul: batch dimensions differ: A {}, B {}, C {}", A.str(), B.str(), C.str());
    batch *= C.size(i);
  }
  const int64_t M = transA ? A.size(-1) : A.size(-2), K = transA ? A.size(-2) : A.size(-1);
  const int64_t KB = transB ? B.size(-1) : B.size(-2), N = transB ? B.size(-2) : B.size(-1);
  BR_CHECK(
      K == KB,
      "matmul: K mismatch: op(A) of A {} (transA={}) has K={}, op(B) of B {} (transB={}) has K={}",
      A.str(), transA, K, B.str(), transB, KB);
  BR_CHECK(C.size(-2) == M && C.size(-1) == N,
           "matmul: C {} must be [.., {}, {}] for A {} (transA={}) and B {} (transB={})", C.str(),
           M, N, A.str(), transA, B.str(), transB);
  check_same_device("matmul", C, A);
  check_same_device("matmul", C, B);
  // On the CPU in bf16 mode an operand may come as bf16 already (a model's bf16 weight copy).
  const auto f32_or_bf16 = [](const Tensor& t) {
    return t.dtype() == DType::f32 || t.dtype() == DType::bf16;
  };
  const bool cpu_mixed = C.device() == Device::cpu && C.dtype() == DType::f32 &&
                         (A.dtype() == DType::bf16 || B.dtype() == DType::bf16) &&
                         f32_or_bf16(A) && f32_or_bf16(B);
  if (cpu_mixed)
    BR_CHECK(cpu::bf16_matmul(),
             "matmul: a bf16 operand on the CPU needs the bf16 product mode (set_cpu_bf16_matmul); "
             "got A {}, B {}, C {}",
             A.str(), B.str(), C.str());
  else
    BR_CHECK(A.dtype() == B.dtype(), "matmul: A {} and B {} must share a dtype", A.str(), B.str());
  if (C.numel() == 0) return;
  auto overlaps = [](const Tensor& a, const Tensor& b) {
    const char *p = static_cast<const char*>(a.raw()), *q = static_cast<const char*>(b.raw());
    return a.nbytes() > 0 && b.nbytes() > 0 && p < q + b.nbytes() && q < p + a.nbytes();
  };
  BR_CHECK(!overlaps(C, A) && !overlaps(C, B), "matmul: C {} overlaps A {} or B {} in memory",
           C.str(), A.str(), B.str());
  if (C.device() == Device::cpu) {
    if (cpu_mixed) return cpu::matmul(C, A, transA, B, transB, batch, M, N, K, alpha, beta);
    BR_CHECK((A.dtype() == DType::f32 || A.dtype() == DType::f64) && C.dtype() == A.dtype(),
             "matmul: CPU supports f32 or f64 with one dtype for A, B, C; got A {}, B {}, C {}",
             A.str(), B.str(), C.str());
    return cpu::matmul(C, A, transA, B, transB, batch, M, N, K, alpha, beta);
  }
  BR_CHECK((A.dtype() == DType::f32 && C.dtype() == DType::f32) ||
               (A.dtype() == DType::bf16 && (C.dtype() == DType::bf16 || C.dtype() == DType::f32)),
           "matmul: CUDA supports f32 A/B/C or bf16 A/B with bf16 or f32 C; got A {}, B {}, C {}",
           A.str(), B.str(), C.str());
  BR_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && batch <= INT_MAX,
           "matmul: dimensions of A {}, B {}, C {} exceed cuBLAS's int range", A.str(), B.str(),
           C.str());
#if BERTRAZOR_WITH_CUDA
  cuda::matmul(C, A, transA, B, transB, batch, M, N, K, alpha, beta, g_tf32);
#endif
}

}  // namespace br
