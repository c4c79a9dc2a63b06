#include "kernels/cpu/cpu_ops.h"

// GCC 12 reports false maybe-uninitialized warnings inside Eigen's AVX-512 GEMM kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
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
  const float* mask;  // [B, S] or nullptr
  float p;
  DropoutKey key;
  const int32_t* ids;  // [B] or nullptr when p == 0

  float mask_at(int64_t b, int64_t j) const { return mask ? mask[b * S + j] : 0.0f; }
};

Problem problem(const Tensor& q, const Tensor& mask, float p, const DropoutKey& key,
                const Tensor& ids) {
  return Problem{q.size(0),
                 q.size(1),
                 q.size(2),
                 q.size(3),
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
    for (int j = 0; j < kDropoutBlock; ++j) {
      const int64_t t = int64_t(uint64_t(gb) * 4 + uint64_t(j)) - int64_t(e0);
      if (t >= 0 && t < len) z[t] = philox_uniform(u[j]) >= p ? zscale : T(0);
    }
  }
}

template <typename T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

// exp(x) elementwise (Eigen's vectorized exp), with x below log(smallest normal) giving exactly 0:
// Eigen clamps very negative inputs instead of underflowing, and padded keys must get P == 0.
template <typename T>
void exp_flushed(ArrayMap<T> x) {
  const T cutoff = std::log(std::numeric_limits<T>::min());
  x = (x < cutoff).select(T(0), x.exp());
}

// row ← softmax(row + mask) in place, returning the row's logsumexp; mask (length S) may be null.
template <typename T>
T softmax_row(T* row, const T* mask, int64_t S) {
  ArrayMap<T> r(row, S);
  if (mask) r += ArrayMap<T>(const_cast<T*>(mask), S);
  const T mx = r.maxCoeff();
  r -= mx;
  exp_flushed(r);
  const T sum = r.sum();
  r *= T(1) / sum;
  return mx + std::log(sum);
}

// The mask row of sample b as T, or null when there is no mask.
template <typename T>
const T* mask_row(std::vector<T>& buf, const Problem& pr, int64_t b) {
  if (!pr.mask) return nullptr;
  buf.resize(size_t(pr.S));
  for (int64_t j = 0; j < pr.S; ++j) buf[size_t(j)] = T(pr.mask[b * pr.S + j]);
  return buf.data();
}

// Per (b, n): P = softmax(scale·Q·Kᵀ + mask) [S, S]; out = dropout(P)·V.
template <typename T>
void forward_impl(T* out, T* probs, const T* q, const T* k, const T* v, const Problem& pr,
                  float scale) {
  const int64_t S = pr.S, D = pr.D, SS = S * S, SD = S * D;
#pragma omp parallel
  {
    std::vector<T> z(pr.p > 0.0f ? static_cast<size_t>(SS) : 0), mbuf;
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      MapC<T> Q(q + bn * SD, S, D), K(k + bn * SD, S, D), V(v + bn * SD, S, D);
      Map<T> P(probs + bn * SS, S, S);
      P.noalias() = (Q * K.transpose()) * T(scale);
      const T* mrow = mask_row(mbuf, pr, b);
      for (int64_t i = 0; i < S; ++i) softmax_row(probs + bn * SS + i * S, mrow, S);
      Map<T> O(out + bn * SD, S, D);
      if (pr.p > 0.0f) {
        dropout_scales(z.data(), SS, uint32_t(n * SS), pr.p, pr.key, uint32_t(pr.ids[b]));
        Map<T> Z(z.data(), S, S);
        Z.array() *= P.array();
        O.noalias() = Z * V;
      } else {
        O.noalias() = P * V;
      }
    }
  }
}

// Per (b, n): Pd = dropout(P); dV = Pdᵀ·dO; dP = dropout(dO·Vᵀ); dS = P ⊙ (dP − rowsum(dP ⊙ P));
// dQ = scale·dS·K; dK = scale·dSᵀ·Q.
template <typename T>
void backward_impl(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                   const T* probs, const Problem& pr, float scale) {
  const int64_t S = pr.S, D = pr.D, SS = S * S, SD = S * D;
#pragma omp parallel
  {
    std::vector<T> z(pr.p > 0.0f ? static_cast<size_t>(SS) : 0), ds(static_cast<size_t>(SS));
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      MapC<T> Q(q + bn * SD, S, D), K(k + bn * SD, S, D), V(v + bn * SD, S, D);
      MapC<T> dO(dout + bn * SD, S, D), P(probs + bn * SS, S, S);
      Map<T> dS(ds.data(), S, S);
      dS.noalias() = dO * V.transpose();
      if (pr.p > 0.0f) {
        dropout_scales(z.data(), SS, uint32_t(n * SS), pr.p, pr.key, uint32_t(pr.ids[b]));
        Map<T> Z(z.data(), S, S);
        dS.array() *= Z.array();
        Z.array() *= P.array();
        Map<T>(dv + bn * SD, S, D).noalias() = Z.transpose() * dO;
      } else {
        Map<T>(dv + bn * SD, S, D).noalias() = P.transpose() * dO;
      }
      const auto r = (dS.array() * P.array()).rowwise().sum().eval();
      dS.array() = P.array() * (dS.array().colwise() - r);
      Map<T>(dq + bn * SD, S, D).noalias() = (dS * K) * T(scale);
      Map<T>(dk + bn * SD, S, D).noalias() = (dS.transpose() * Q) * T(scale);
    }
  }
}

template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <typename T>
using RowC = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

// Row by row, holding one score row of S values: s_j = scale·q_i·k_j + mask_j,
// lse_i = log Σ_j exp(s_j), out_i = Σ_j z_ij·exp(s_j − lse_i)·v_j.
template <typename T>
void flash_forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, const Problem& pr,
                        float scale) {
  const int64_t S = pr.S, D = pr.D, SS = S * S, SD = S * D;
#pragma omp parallel
  {
    Vec<T> s(S), z(S);
    std::vector<T> mbuf;
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      MapC<T> K(k + bn * SD, S, D), V(v + bn * SD, S, D);
      const T* mrow = mask_row(mbuf, pr, b);
      for (int64_t i = 0; i < S; ++i) {
        s.noalias() = (K * RowC<T>(q + bn * SD + i * D, D).transpose()) * T(scale);
        lse[bn * S + i] = float(softmax_row(s.data(), mrow, S));
        if (pr.p > 0.0f) {
          dropout_scales(z.data(), S, uint32_t(n * SS + i * S), pr.p, pr.key, uint32_t(pr.ids[b]));
          s.array() *= z.array();
        }
        Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(out + bn * SD + i * D, D).noalias() =
            s.transpose() * V;
      }
    }
  }
}

// Recomputes p_ij = exp(s_ij − lse_i); with Dr_i = dout_i·out_i (= Σ_j dP_ij·p_ij):
// dS_ij = p_ij·(z_ij·dout_i·v_j − Dr_i); dq_i = scale·Σ_j dS_ij·k_j; dk_j = scale·Σ_i dS_ij·q_i;
// dv_j = Σ_i z_ij·p_ij·dout_i.
template <typename T>
void flash_backward_impl(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                         const T* out, const float* lse, const Problem& pr, float scale) {
  const int64_t S = pr.S, D = pr.D, SS = S * S, SD = S * D;
#pragma omp parallel
  {
    Vec<T> p(S), g(S), z(S);
    std::vector<T> mbuf;
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      MapC<T> K(k + bn * SD, S, D), V(v + bn * SD, S, D);
      Map<T> dK(dk + bn * SD, S, D), dV(dv + bn * SD, S, D);
      dK.setZero();
      dV.setZero();
      const T* mrow = mask_row(mbuf, pr, b);
      for (int64_t i = 0; i < S; ++i) {
        RowC<T> qi(q + bn * SD + i * D, D), gi(dout + bn * SD + i * D, D);
        const T Dr = gi.dot(RowC<T>(out + bn * SD + i * D, D));
        p.noalias() = (K * qi.transpose()) * T(scale);
        if (mrow) p.array() += ArrayMap<T>(const_cast<T*>(mrow), S);
        p.array() -= T(lse[bn * S + i]);
        exp_flushed(ArrayMap<T>(p.data(), S));
        g.noalias() = V * gi.transpose();
        if (pr.p > 0.0f) {
          dropout_scales(z.data(), S, uint32_t(n * SS + i * S), pr.p, pr.key, uint32_t(pr.ids[b]));
          g.array() *= z.array();
        }
        g.array() = p.array() * (g.array() - Dr) * T(scale);
        if (pr.p > 0.0f) p.array() *= z.array();
        Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(dq + bn * SD + i * D, D).noalias() =
            g.transpose() * K;
        dK.noalias() += g * qi;
        dV.noalias() += p * gi;
      }
    }
  }
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                       const DropoutKey& key, const Tensor& example_ids) {
  const Problem pr = problem(q, mask, dropout_p, key, example_ids);
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
  const Problem pr = problem(q, Tensor(), dropout_p, key, example_ids);
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
  const Problem pr = problem(q, mask, dropout_p, key, example_ids);
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
  const Problem pr = problem(q, mask, dropout_p, key, example_ids);
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
