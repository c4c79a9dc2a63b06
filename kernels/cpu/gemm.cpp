#include "kernels/cpu/cpu_ops.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics for Eigen's
// kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

namespace br::cpu {

namespace {

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace

// f32 goes to oneDNN's sgemm (chosen by measurement over Eigen, OpenBLAS and BLIS: docs/RESULTS.md,
// "GEMM libraries on every product of the step"); it runs with omp_get_max_threads() threads, or
// one inside a parallel region. f64 (the gradient checks) stays with Eigen: oneDNN has no dgemm.
void gemm_tile(float* c, int64_t ldc, const float* a, int64_t lda, bool ta, const float* b,
               int64_t ldb, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  const dnnl_status_t st =
      dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success)
    fail("matmul: dnnl_sgemm failed (status {}) on M={} N={} K={}", int(st), M, N, K);
}

// Eigen recognises alpha * X * Y over mapped (possibly transposed) operands as one GEMM call with
// the scale folded in, writing straight into C: no temporaries.
void gemm_tile(double* c, int64_t ldc, const double* a, int64_t lda, bool ta, const double* b,
               int64_t ldb, bool tb, int64_t M, int64_t N, int64_t K, double alpha, double beta) {
  using Stride = Eigen::OuterStride<>;
  using Mapped = Eigen::Map<const RowMajor<double>, 0, Stride>;
  Eigen::Map<RowMajor<double>, 0, Stride> C(c, M, N, Stride(ldc));
  const Mapped A(a, ta ? K : M, ta ? M : K, Stride(lda)), B(b, tb ? N : K, tb ? K : N, Stride(ldb));
  auto run = [&](const auto& opa, const auto& opb) {
    if (beta == 0.0) {
      C.noalias() = alpha * opa * opb;
    } else {
      if (beta != 1.0) C *= beta;
      C.noalias() += alpha * opa * opb;
    }
  };
  if (!ta && !tb)
    run(A, B);
  else if (!ta && tb)
    run(A, B.transpose());
  else if (ta && !tb)
    run(A.transpose(), B);
  else
    run(A.transpose(), B.transpose());
}

namespace {

// One product of packed row-major operands.
template <typename T>
void gemm_one(T* c, const T* a, bool ta, const T* b, bool tb, int64_t M, int64_t N, int64_t K,
              T alpha, T beta) {
  gemm_tile(c, N, a, ta ? M : K, ta, b, tb ? K : N, tb, M, N, K, alpha, beta);
}

// Below this many multiply-adds (about 0.1 ms on one core) a lone product runs on the calling
// thread. Eigen threads any product of more than ~50k multiply-adds per thread, and at batch 1 or
// short sequences the fork, its barrier and (under OMP_WAIT_POLICY=PASSIVE or a busy machine) the
// wake-up of the second thread cost more than they save.
constexpr int64_t kSerialMacs = int64_t(1) << 23;

// ---- bf16 products with f32 accumulation (set_cpu_bf16_matmul) ----

std::atomic<bool> g_bf16{false};

// oneDNN's matmul primitive on bf16 A and B with an f32 C (its brgemm kernels use AVX512-BF16's
// vdpbf16ps where the CPU has it), one per shape, made once and kept: creating a primitive costs
// more than a small product.
struct Bf16Gemm {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::mutex mu;
  using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, float, float>;
  std::map<Key, dnnl::matmul> cache;

  bool unsupported = false;  // this CPU has no bf16 matmul in oneDNN (no AVX512-BF16, AMX)

  // The primitive for a shape, or nullopt when oneDNN implements none on this CPU.
  std::optional<dnnl::matmul> get(int64_t M, int64_t N, int64_t K, bool ta, bool tb, float alpha,
                                  float beta) {
    const Key key{M, N, K, ta, tb, alpha, beta};
    std::lock_guard<std::mutex> lock(mu);
    if (unsupported) return std::nullopt;
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    using dt = dnnl::memory::data_type;
    // A [M,K] (stored [K,M] when ta), B [K,N] (stored [N,K] when tb), C [M,N], all row-major.
    const dnnl::memory::desc a({M, K}, dt::bf16, ta ? dnnl::memory::dims{1, M} : dnnl::memory::dims{K, 1});
    const dnnl::memory::desc b({K, N}, dt::bf16, tb ? dnnl::memory::dims{1, K} : dnnl::memory::dims{N, 1});
    const dnnl::memory::desc c({M, N}, dt::f32, dnnl::memory::dims{N, 1});
    dnnl::primitive_attr attr;
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    if (beta != 0.0f) {
      dnnl::post_ops po;
      po.append_sum(beta);
      attr.set_post_ops(po);
    }
    const std::optional<dnnl::matmul::primitive_desc> pd = primitive_desc(a, b, c, attr);
    if (!pd) {
      unsupported = true;
      return std::nullopt;
    }
    dnnl::matmul mm(*pd);
    cache.emplace(key, mm);
    return mm;
  }

  // The primitive's description, or nullopt where oneDNN answers unimplemented (no bf16 kernel).
  std::optional<dnnl::matmul::primitive_desc> primitive_desc(const dnnl::memory::desc& a,
                                                             const dnnl::memory::desc& b,
                                                             const dnnl::memory::desc& c,
                                                             const dnnl::primitive_attr& attr) {
    try {
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine);
    } catch (const dnnl::error& e) {
      if (e.status != dnnl_unimplemented) throw;
      return std::nullopt;
    }
  }
};

Bf16Gemm& bf16_gemm() {
  static Bf16Gemm g;
  return g;
}

template <typename T>
void gemm_batched(T* c, const T* a, bool ta, const T* b, bool tb, int64_t batch, int64_t M,
                  int64_t N, int64_t K, T alpha, T beta);

// C = alpha op(A) op(B) + beta C for `batch` products, f32 operands rounded to bf16 first (by
// cast, into workspace tensors the allocator counts), bf16 ones (the model's bf16 weight copies,
// BertForSequenceClassification::compute_weights) used as they are, f32 accumulation. A product's
// bits do not depend on the thread count (tests/kernels/test_gemm.cpp), nor on whether an operand
// came rounded already (the same rounding, float_to_bf16).
void gemm_bf16(float* c, const Tensor& a, bool ta, const Tensor& b, bool tb, int64_t batch,
               int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  const int64_t sa = M * K, sb = K * N, sc = M * N;
  const std::optional<dnnl::matmul> prim = bf16_gemm().get(M, N, K, ta, tb, alpha, beta);
  if (!prim) {
    // No bf16 kernel on this CPU: the same product, bf16-rounded operands in f32 storage through
    // sgemm (the bits differ from the bf16 kernel's by summation order only).
    auto rounded = [](const Tensor& x) {
      const int64_t n = x.numel();
      Tensor t = Tensor::empty({n}, DType::f32, Device::cpu, MemCategory::workspace);
      float* d = t.data<float>();
      if (x.dtype() == DType::bf16) {
        const auto* s = static_cast<const uint16_t*>(x.raw());
        for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_float(s[i]);
      } else {
        const float* s = x.data<float>();
        for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_float(float_to_bf16(s[i]));
      }
      return t;
    };
    Tensor a32 = rounded(a), b32 = rounded(b);
    return gemm_batched(c, static_cast<const float*>(a32.data<float>()), ta,
                        static_cast<const float*>(b32.data<float>()), tb, batch, M, N, K, alpha,
                        beta);
  }
  const dnnl::matmul& mm = *prim;
  // The operand in bf16: itself, or a rounded copy.
  auto in_bf16 = [](const Tensor& x) {
    if (x.dtype() == DType::bf16) return x;
    Tensor r = Tensor::empty({x.numel()}, DType::bf16, Device::cpu, MemCategory::workspace);
    cast(r, x.flat());
    return r;
  };
  const Tensor a_bf16 = in_bf16(a), b_bf16 = in_bf16(b);
  uint16_t* a16 = static_cast<uint16_t*>(a_bf16.raw());
  uint16_t* b16 = static_cast<uint16_t*>(b_bf16.raw());
  const dnnl::engine& eng = bf16_gemm().engine;
  const dnnl::matmul::primitive_desc pd(const_cast<dnnl_primitive_desc_t>(mm.get_primitive_desc()));
  auto run = [&](int64_t g) {
    dnnl::stream s(eng);
    dnnl::memory am(pd.src_desc(), eng, a16 + g * sa);
    dnnl::memory bm(pd.weights_desc(), eng, b16 + g * sb);
    dnnl::memory cm(pd.dst_desc(), eng, c + g * sc);
    mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.wait();
  };
  const bool over_batch = batch > 1 && M * N * K < (int64_t(1) << 21);
  if (!over_batch) {
    for (int64_t g = 0; g < batch; ++g) run(g);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < batch; ++g) run(g);
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
  if (!over_batch) {
    // Not inside an `omp parallel if (false)`: that region is inactive (a team of one), and the
    // library's own parallel region then runs as a nested team. At top level it takes the pool's
    // threads: 16% fewer context switches over MiniLM 16×32 steps, the same thread count and bits
    // (docs/RESULTS.md, session 25).
    for (int64_t g = 0; g < batch; ++g)
      gemm_one(c + g * sc, a + g * sa, ta, b + g * sb, tb, M, N, K, alpha, beta);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < batch; ++g)
    gemm_one(c + g * sc, a + g * sa, ta, b + g * sb, tb, M, N, K, alpha, beta);
}

}  // namespace

void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  switch (C.dtype()) {
    case DType::f32:
      if (g_bf16.load(std::memory_order_relaxed)) {
        if (batch * M * N * K < kSerialMacs && !omp_in_parallel()) {
          SerialScope serial;
          return gemm_bf16(C.data<float>(), A, transA, B, transB, batch, M, N, K, alpha, beta);
        }
        return gemm_bf16(C.data<float>(), A, transA, B, transB, batch, M, N, K, alpha, beta);
      }
      return gemm_batched(C.data<float>(), A.data<float>(), transA, B.data<float>(), transB, batch,
                          M, N, K, alpha, beta);
    case DType::f64:
      return gemm_batched(C.data<double>(), A.data<double>(), transA, B.data<double>(), transB,
                          batch, M, N, K, double(alpha), double(beta));
    default:
      fail("matmul: CPU supports f32 and f64, got C {}", C.str());
  }
}

void set_bf16_matmul(bool on) { g_bf16 = on; }
void set_bf16_matmul_fallback(bool on) {
  Bf16Gemm& g = bf16_gemm();
  std::lock_guard<std::mutex> lock(g.mu);
  g.unsupported = on;
}
bool bf16_matmul() { return g_bf16; }

bool bf16_matmul_native() {
  // One small primitive's description, made once (the test fallback flag does not enter).
  static const bool native = [] {
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc a({16, 16}, dt::bf16, dnnl::memory::dims{16, 1});
    const dnnl::memory::desc c({16, 16}, dt::f32, dnnl::memory::dims{16, 1});
    return bf16_gemm().primitive_desc(a, a, c, dnnl::primitive_attr()).has_value();
  }();
  return native;
}

}  // namespace br::cpu
