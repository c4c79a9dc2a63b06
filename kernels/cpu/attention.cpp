#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/cpu_math.h"

// GCC 12 reports false maybe-uninitialized warnings inside Eigen's AVX-512 GEMM kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace br::cpu {

namespace {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MapC = Eigen::Map<const Mat<T>>;
template <typename T>
using Map = Eigen::Map<Mat<T>>;

// What the backends share: sizes, the mask row pointer and the dropout parameters of one call.
struct Problem {
  int64_t B, N, S, D;
  int64_t Sq;  // query rows: the first Sq of S (materialized attention; flash has Sq == S)
  const float* mask;  // [B, S] or nullptr
  float p;
  DropoutKey key;
  const int32_t* ids;  // [B] or nullptr when p == 0

  // Element (n, i, j)'s dropout index (n·L + i)·L + j, L = the key's row length (or S).
  uint32_t element(int64_t n, int64_t i, int64_t j) const {
    const int64_t L = attention_dropout_stride(key, uint32_t(S));
    return uint32_t((n * L + i) * L + j);
  }
  float mask_at(int64_t b, int64_t j) const { return mask ? mask[b * S + j] : 0.0f; }
};

Problem problem(const Tensor& q, const Tensor& k, const Tensor& mask, float p,
                const DropoutKey& key, const Tensor& ids) {
  return Problem{q.size(0),
                 q.size(1),
                 k.size(2),
                 q.size(3),
                 q.size(2),
                 mask.defined() ? mask.data<float>() : nullptr,
                 p,
                 key,
                 p > 0.0f ? ids.data<int32_t>() : nullptr};
}

// z[t] = keep(e0 + t)/(1−p) for t < len, keep(e) = dropout_uniform(key, example, e) >= p (0 when
// dropped), from the words of kDropoutLanes counters at a time (core/philox.h's dropout_words).
template <typename T>
void dropout_scales(T* z, int64_t len, uint32_t e0, float p, const DropoutKey& key,
                    uint32_t example) {
  const T zscale = p < 1.0f ? T(1) / (T(1) - T(p)) : T(0);
  const uint32_t g_begin = e0 >> 2, g_end = uint32_t((uint64_t(e0) + uint64_t(len) + 3) >> 2);
  for (uint32_t gb = g_begin; gb < g_end; gb += kDropoutLanes) {
    uint32_t u[kDropoutBlock];
    dropout_words(u, gb, example, key);
    const int64_t t0 = int64_t(uint64_t(gb) * 4) - int64_t(e0);
    if (t0 >= 0 && t0 + kDropoutBlock <= len) {  // a whole block: no bounds, vectorized
      T* zt = z + t0;
#pragma omp simd
      for (int j = 0; j < kDropoutBlock; ++j) zt[j] = philox_uniform(u[j]) >= p ? zscale : T(0);
      continue;
    }
    T zb[kDropoutBlock];  // a block cut by the range's ends (a short row's only block)
#pragma omp simd
    for (int j = 0; j < kDropoutBlock; ++j) zb[j] = philox_uniform(u[j]) >= p ? zscale : T(0);
    const int64_t j0 = std::max<int64_t>(0, -t0), j1 = std::min<int64_t>(kDropoutBlock, len - t0);
    std::copy(zb + j0, zb + j1, z + t0 + j0);
  }
}

template <typename T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

// exp(x) elementwise for x <= 0 (every caller subtracts a running maximum or the logsumexp first),
// with results below the smallest normal exactly 0: padded keys must get P == 0. f32 through the
// vectorized exp_nonpositive (kernels/cpu/cpu_math.h; Eigen's select around exp() compiled to a
// scalar libm expf per element); f64 (the gradient checks) through std::exp.
template <typename T>
void exp_flushed(ArrayMap<T> x) {
  T* p = x.data();
  const int64_t n = x.size();
  if constexpr (std::is_same_v<T, float>) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) p[i] = exp_nonpositive(p[i]);
  } else {
    const T cutoff = std::log(std::numeric_limits<T>::min());
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] < cutoff ? T(0) : std::exp(p[i]);
  }
}

// row ← softmax(row + mask) in place; mask (length S) may be null.
template <typename T>
void softmax_row(T* row, const T* mask, int64_t S) {
  ArrayMap<T> r(row, S);
  if (mask) r += ArrayMap<T>(const_cast<T*>(mask), S);
  const T mx = r.maxCoeff();
  r -= mx;
  exp_flushed(r);
  r *= T(1) / r.sum();
}

// The mask row of sample b as T, or null when there is no mask.
template <typename T>
const T* mask_row(std::vector<T>& buf, const Problem& pr, int64_t b) {
  if (!pr.mask) return nullptr;
  buf.resize(size_t(pr.S));
  for (int64_t j = 0; j < pr.S; ++j) buf[size_t(j)] = T(pr.mask[b * pr.S + j]);
  return buf.data();
}

// z[r·bc + c] for rows i0.. and columns j0.. of head n of sample b: the dropout scale of element
// (n, i0 + r, j0 + c) (Problem::element). One pass when the rows are contiguous elements (L = S).
template <typename T>
void dropout_tile(T* z, int64_t br, int64_t bc, int64_t n, int64_t i0, int64_t j0,
                  const Problem& pr, int64_t b) {
  const uint32_t example = uint32_t(pr.ids[b]);
  if (bc == pr.S && attention_dropout_stride(pr.key, uint32_t(pr.S)) == pr.S)
    return dropout_scales(z, br * bc, pr.element(n, i0, 0), pr.p, pr.key, example);
  for (int64_t r = 0; r < br; ++r)
    dropout_scales(z + r * bc, bc, pr.element(n, i0 + r, j0), pr.p, pr.key, example);
}

// Per (b, n): P = softmax(scale·Q·Kᵀ + mask) [Sq, S]; out = dropout(P)·V. The products go through
// gemm_tile (oneDNN's sgemm for f32, on this thread: 1.3-2.6x Eigen's on one head's shapes). The
// Sq query rows are the first of S, with those rows' dropout elements.
template <typename T>
void forward_impl(T* out, T* probs, const T* q, const T* k, const T* v, const Problem& pr,
                  float scale) {
  const int64_t S = pr.S, Sq = pr.Sq, D = pr.D, SP = Sq * S, SD = S * D, QD = Sq * D;
#pragma omp parallel
  {
    std::vector<T> z(pr.p > 0.0f ? static_cast<size_t>(SP) : 0), mbuf;
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      const T *Q = q + bn * QD, *K = k + bn * SD, *V = v + bn * SD;
      T* P = probs + bn * SP;
      gemm_tile(P, S, Q, D, false, K, D, true, Sq, S, D, T(scale), T(0));  // scale·Q·Kᵀ
      const T* mrow = mask_row(mbuf, pr, b);
      for (int64_t i = 0; i < Sq; ++i) softmax_row(P + i * S, mrow, S);
      if (pr.p > 0.0f) {
        dropout_tile(z.data(), Sq, S, n, 0, 0, pr, b);
        ArrayMap<T>(z.data(), SP) *= ArrayMap<T>(P, SP);
        gemm_tile(out + bn * QD, D, z.data(), S, false, V, D, false, Sq, D, S, T(1), T(0));
      } else {
        gemm_tile(out + bn * QD, D, P, S, false, V, D, false, Sq, D, S, T(1), T(0));
      }
    }
  }
}

// Per (b, n): Pd = dropout(P); dV = Pdᵀ·dO; dP = dropout(dO·Vᵀ); dS = P ⊙ (dP − rowsum(dP ⊙ P));
// dQ = scale·dS·K; dK = scale·dSᵀ·Q.
template <typename T>
void backward_impl(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                   const T* probs, const Problem& pr, float scale) {
  const int64_t S = pr.S, Sq = pr.Sq, D = pr.D, SP = Sq * S, SD = S * D, QD = Sq * D;
#pragma omp parallel
  {
    std::vector<T> z(pr.p > 0.0f ? static_cast<size_t>(SP) : 0), ds(static_cast<size_t>(SP));
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      const T *Q = q + bn * QD, *K = k + bn * SD, *V = v + bn * SD, *dO = dout + bn * QD;
      const T* Pp = probs + bn * SP;
      MapC<T> P(Pp, Sq, S);
      Map<T> dS(ds.data(), Sq, S);
      gemm_tile(ds.data(), S, dO, D, false, V, D, true, Sq, S, D, T(1), T(0));  // dO·Vᵀ
      if (pr.p > 0.0f) {
        dropout_tile(z.data(), Sq, S, n, 0, 0, pr, b);
        Map<T> Z(z.data(), Sq, S);
        dS.array() *= Z.array();
        Z.array() *= P.array();
        gemm_tile(dv + bn * SD, D, z.data(), S, true, dO, D, false, S, D, Sq, T(1), T(0));
      } else {
        gemm_tile(dv + bn * SD, D, Pp, S, true, dO, D, false, S, D, Sq, T(1), T(0));
      }
      const auto r = (dS.array() * P.array()).rowwise().sum().eval();
      dS.array() = P.array() * (dS.array().colwise() - r);
      gemm_tile(dq + bn * QD, D, ds.data(), S, false, K, D, false, Sq, D, S, T(scale), T(0));
      gemm_tile(dk + bn * SD, D, ds.data(), S, true, Q, D, false, S, D, Sq, T(scale), T(0));
    }
  }
}

template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <typename T>
using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;

// The fused (flash) kernels work on tiles: kBr query rows × kBc key columns of one (b, n), each
// inner product a GEMM on contiguous row blocks of Q, K, V (row-major [S, D]) through gemm_tile;
// the score tile (kBr·kBc values, 16 KiB in f32) stays in L1/L2 with K and V of the head. Threads
// take whole (b, n) pairs, so no result depends on the thread count.
constexpr int64_t kBr = 64, kBc = 64;


// Per (b, n) and query tile, online softmax over key tiles: with m the running row max and l the
// running Σ exp(s − m), each key tile rescales the accumulated output by exp(m_old − m_new) and adds
// (z ⊙ exp(s − m_new))·V; at the end out = acc / l, lse = m + log l. The same value as
// softmax(s)·V with the same dropout mask, summed in another order.
template <typename T>
void flash_forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, const Problem& pr,
                        float scale) {
  const int64_t S = pr.S, D = pr.D, SD = S * D;
#pragma omp parallel
  {
    std::vector<T> sbuf(size_t(kBr * kBc)), zbuf(pr.p > 0.0f ? size_t(kBr * kBc) : 0), mbuf;
    Arr<T> m(kBr), l(kBr), mnew(kBr), alpha(kBr);
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      const T* mrow = mask_row(mbuf, pr, b);
      for (int64_t i0 = 0; i0 < S; i0 += kBr) {
        const int64_t br = std::min(kBr, S - i0);
        const T* Qi = q + bn * SD + i0 * D;
        Map<T> Oi(out + bn * SD + i0 * D, br, D);
        Oi.setZero();
        auto mi = m.head(br), li = l.head(br), mn = mnew.head(br), al = alpha.head(br);
        mi.setConstant(-std::numeric_limits<T>::infinity());
        li.setZero();
        for (int64_t j0 = 0; j0 < S; j0 += kBc) {
          const int64_t bc = std::min(kBc, S - j0);
          const T *Kj = k + bn * SD + j0 * D, *Vj = v + bn * SD + j0 * D;
          Map<T> St(sbuf.data(), br, bc);
          gemm_tile(sbuf.data(), bc, Qi, D, false, Kj, D, true, br, bc, D, T(scale), T(0));
          if (mrow)
            St.array().rowwise() +=
                Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(mrow + j0, bc);
          mn = mi.max(St.rowwise().maxCoeff().array());
          al = mi - mn;
          exp_flushed(ArrayMap<T>(al.data(), br));
          St.array().colwise() -= mn;
          exp_flushed(ArrayMap<T>(sbuf.data(), br * bc));
          li = li * al + St.rowwise().sum().array();
          if (pr.p > 0.0f) {
            dropout_tile(zbuf.data(), br, bc, n, i0, j0, pr, b);
            St.array() *= Map<T>(zbuf.data(), br, bc).array();
          }
          Oi.array().colwise() *= al;
          gemm_tile(Oi.data(), D, sbuf.data(), bc, false, Vj, D, false, br, D, bc, T(1), T(1));
          mi = mn;
        }
        Oi.array().colwise() /= li;
        for (int64_t r = 0; r < br; ++r) lse[bn * S + i0 + r] = float(mi(r) + std::log(li(r)));
      }
    }
  }
}

// Per (b, n), tiles of query rows × key columns: P = exp(s − lse) recomputed, G = dO·Vᵀ (⊙ z),
// with Dr_i = dout_i·out_i (= Σ_j dP_ij·p_ij): dS = scale·P ⊙ (G − Dr); dQ_i += dS·K_j;
// dK_j += dSᵀ·Q_i; dV_j += (z ⊙ P)ᵀ·dO_i.
template <typename T>
void flash_backward_impl(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                         const T* out, const float* lse, const Problem& pr, float scale) {
  const int64_t S = pr.S, D = pr.D, SD = S * D;
#pragma omp parallel
  {
    std::vector<T> pbuf(size_t(kBr * kBc)), gbuf(size_t(kBr * kBc)),
        zbuf(pr.p > 0.0f ? size_t(kBr * kBc) : 0), mbuf;
    Arr<T> Dr(S), L(S);
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      const T* mrow = mask_row(mbuf, pr, b);
      MapC<T> dO(dout + bn * SD, S, D), O(out + bn * SD, S, D);
      Dr = (dO.array() * O.array()).rowwise().sum();
      for (int64_t i = 0; i < S; ++i) L(i) = T(lse[bn * S + i]);
      Map<T> dQ(dq + bn * SD, S, D), dK(dk + bn * SD, S, D), dV(dv + bn * SD, S, D);
      dQ.setZero();
      dK.setZero();
      dV.setZero();
      for (int64_t i0 = 0; i0 < S; i0 += kBr) {
        const int64_t br = std::min(kBr, S - i0);
        const T *Qi = q + bn * SD + i0 * D, *dOi = dout + bn * SD + i0 * D;
        T* dQi = dq + bn * SD + i0 * D;
        for (int64_t j0 = 0; j0 < S; j0 += kBc) {
          const int64_t bc = std::min(kBc, S - j0);
          const T *Kj = k + bn * SD + j0 * D, *Vj = v + bn * SD + j0 * D;
          Map<T> Pt(pbuf.data(), br, bc), Gt(gbuf.data(), br, bc);
          gemm_tile(pbuf.data(), bc, Qi, D, false, Kj, D, true, br, bc, D, T(scale), T(0));
          if (mrow)
            Pt.array().rowwise() +=
                Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(mrow + j0, bc);
          Pt.array().colwise() -= L.segment(i0, br);
          exp_flushed(ArrayMap<T>(pbuf.data(), br * bc));
          gemm_tile(gbuf.data(), bc, dOi, D, false, Vj, D, true, br, bc, D, T(1), T(0));
          if (pr.p > 0.0f) {
            dropout_tile(zbuf.data(), br, bc, n, i0, j0, pr, b);
            Gt.array() *= Map<T>(zbuf.data(), br, bc).array();
          }
          Gt.array() = Pt.array() * (Gt.array().colwise() - Dr.segment(i0, br)) * T(scale);
          if (pr.p > 0.0f) Pt.array() *= Map<T>(zbuf.data(), br, bc).array();
          gemm_tile(dQi, D, gbuf.data(), bc, false, Kj, D, false, br, D, bc, T(1), T(1));
          gemm_tile(dk + bn * SD + j0 * D, D, gbuf.data(), bc, true, Qi, D, false, bc, D, br, T(1),
                    T(1));
          gemm_tile(dv + bn * SD + j0 * D, D, pbuf.data(), bc, true, dOi, D, false, bc, D, br, T(1),
                    T(1));
        }
      }
    }
  }
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                       const DropoutKey& key, const Tensor& example_ids) {
  const Problem pr = problem(q, k, mask, dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return forward_impl(out.data<float>(), probs.data<float>(), q.data<float>(), k.data<float>(),
                        v.data<float>(), pr, scale);
  if (q.dtype() == DType::f64)
    return forward_impl(out.data<double>(), probs.data<double>(), q.data<double>(),
                        k.data<double>(), v.data<double>(), pr, scale);
  fail("attention_forward: CPU supports f32 and f64, got {}", q.str());
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                        float scale, float dropout_p, const DropoutKey& key,
                        const Tensor& example_ids) {
  const Problem pr = problem(q, k, Tensor(), dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return backward_impl(dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(),
                         q.data<float>(), k.data<float>(), v.data<float>(), probs.data<float>(),
                         pr, scale);
  if (q.dtype() == DType::f64)
    return backward_impl(dq.data<double>(), dk.data<double>(), dv.data<double>(),
                         dout.data<double>(), q.data<double>(), k.data<double>(),
                         v.data<double>(), probs.data<double>(), pr, scale);
  fail("attention_backward: CPU supports f32 and f64, got {}", q.str());
}

void flash_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                             const DropoutKey& key, const Tensor& example_ids) {
  const Problem pr = problem(q, k, mask, dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return flash_forward_impl(out.data<float>(), lse.data<float>(), q.data<float>(),
                              k.data<float>(), v.data<float>(), pr, scale);
  if (q.dtype() == DType::f64)
    return flash_forward_impl(out.data<double>(), lse.data<float>(), q.data<double>(),
                              k.data<double>(), v.data<double>(), pr, scale);
  fail("flash_attention_forward: CPU supports f32 and f64, got {}", q.str());
}

void flash_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                              const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& mask, float scale, float dropout_p,
                              const DropoutKey& key, const Tensor& example_ids) {
  const Problem pr = problem(q, k, mask, dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return flash_backward_impl(dq.data<float>(), dk.data<float>(), dv.data<float>(),
                               dout.data<float>(), q.data<float>(), k.data<float>(),
                               v.data<float>(), out.data<float>(), lse.data<float>(), pr, scale);
  if (q.dtype() == DType::f64)
    return flash_backward_impl(dq.data<double>(), dk.data<double>(), dv.data<double>(),
                               dout.data<double>(), q.data<double>(), k.data<double>(),
                               v.data<double>(), out.data<double>(), lse.data<float>(), pr,
                               scale);
  fail("flash_attention_backward: CPU supports f32 and f64, got {}", q.str());
}

}  // namespace br::cpu
