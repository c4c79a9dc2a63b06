#include "kernels/cpu/attention.h"

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

// dst[t] = src[t]·z(e0 + t) for t < len, where z(e) = keep(e)/(1−p), keep(e) = dropout_uniform(key,
// example, e) >= p. One Philox call serves the four elements of a group e = 4g..4g+3.
template <typename T>
void dropout_span(T* dst, const T* src, int64_t len, uint32_t e0, float p, const DropoutKey& key,
                  uint32_t example) {
  const T zscale = p < 1.0f ? T(1) / (T(1) - T(p)) : T(0);
  Philox4 w{};
  uint32_t group = UINT32_MAX;
  for (int64_t t = 0; t < len; ++t) {
    const uint32_t e = e0 + uint32_t(t);
    if ((e >> 2) != group) {
      group = e >> 2;
      w = philox4x32_10(Philox4{{group, example, key.site, key.step}}, uint32_t(key.seed),
                        uint32_t(key.seed >> 32));
    }
    dst[t] = philox_uniform(w.v[e & 3u]) >= p ? src[t] * zscale : T(0);
  }
}

// Per (b, n): P = softmax(scale·Q·Kᵀ + mask) [S, S]; out = dropout(P)·V.
template <typename T>
void forward_impl(T* out, T* probs, const T* q, const T* k, const T* v, const Problem& pr,
                  float scale) {
  const int64_t S = pr.S, D = pr.D, SS = S * S, SD = S * D;
#pragma omp parallel
  {
    std::vector<T> drop(pr.p > 0.0f ? static_cast<size_t>(SS) : 0);
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      MapC<T> Q(q + bn * SD, S, D), K(k + bn * SD, S, D), V(v + bn * SD, S, D);
      Map<T> P(probs + bn * SS, S, S);
      P.noalias() = (Q * K.transpose()) * T(scale);
      for (int64_t i = 0; i < S; ++i) {
        T* row = probs + bn * SS + i * S;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < S; ++j) {
          row[j] += T(pr.mask_at(b, j));
          mx = std::max(mx, row[j]);
        }
        T sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const T inv = T(1) / sum;
        for (int64_t j = 0; j < S; ++j) row[j] *= inv;
      }
      Map<T> O(out + bn * SD, S, D);
      if (pr.p > 0.0f) {
        dropout_span(drop.data(), probs + bn * SS, SS, uint32_t(n * SS), pr.p, pr.key,
                     uint32_t(pr.ids[b]));
        O.noalias() = MapC<T>(drop.data(), S, S) * V;
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
    std::vector<T> pd(pr.p > 0.0f ? static_cast<size_t>(SS) : 0), ds(static_cast<size_t>(SS));
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      const uint32_t e0 = uint32_t(n * SS), ex = pr.p > 0.0f ? uint32_t(pr.ids[b]) : 0u;
      MapC<T> Q(q + bn * SD, S, D), K(k + bn * SD, S, D), V(v + bn * SD, S, D);
      MapC<T> dO(dout + bn * SD, S, D), P(probs + bn * SS, S, S);
      Map<T> dS(ds.data(), S, S);
      if (pr.p > 0.0f) {
        dropout_span(pd.data(), probs + bn * SS, SS, e0, pr.p, pr.key, ex);
        Map<T>(dv + bn * SD, S, D).noalias() = MapC<T>(pd.data(), S, S).transpose() * dO;
        dS.noalias() = dO * V.transpose();
        dropout_span(ds.data(), ds.data(), SS, e0, pr.p, pr.key, ex);
      } else {
        Map<T>(dv + bn * SD, S, D).noalias() = P.transpose() * dO;
        dS.noalias() = dO * V.transpose();
      }
      for (int64_t i = 0; i < S; ++i) {
        T* row = ds.data() + i * S;
        const T* prow = probs + bn * SS + i * S;
        T r = 0;
        for (int64_t j = 0; j < S; ++j) r += row[j] * prow[j];
        for (int64_t j = 0; j < S; ++j) row[j] = prow[j] * (row[j] - r);
      }
      Map<T>(dq + bn * SD, S, D).noalias() = (dS * K) * T(scale);
      Map<T>(dk + bn * SD, S, D).noalias() = (dS.transpose() * Q) * T(scale);
    }
  }
}

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

// Row by row, holding one score row of S values: s_j = scale·q_i·k_j + mask_j,
// lse_i = log Σ_j exp(s_j), out_i = Σ_j z_ij·exp(s_j − lse_i)·v_j.
template <typename T>
void flash_forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, const Problem& pr,
                        float scale) {
  const int64_t S = pr.S, D = pr.D, SS = S * S, SD = S * D;
#pragma omp parallel
  {
    std::vector<T> s(static_cast<size_t>(S)), z(static_cast<size_t>(S));
    std::vector<T> ones(static_cast<size_t>(S), T(1));
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      for (int64_t i = 0; i < S; ++i) {
        const T* qi = q + bn * SD + i * D;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < S; ++j) {
          s[j] = dot(qi, k + bn * SD + j * D, D) * T(scale) + T(pr.mask_at(b, j));
          mx = std::max(mx, s[j]);
        }
        T sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          s[j] = std::exp(s[j] - mx);
          sum += s[j];
        }
        lse[bn * S + i] = float(mx + std::log(sum));
        if (pr.p > 0.0f)
          dropout_span(z.data(), ones.data(), S, uint32_t(n * SS + i * S), pr.p, pr.key,
                       uint32_t(pr.ids[b]));
        T* oi = out + bn * SD + i * D;
        std::fill(oi, oi + D, T(0));
        const T inv = T(1) / sum;
        for (int64_t j = 0; j < S; ++j) {
          const T w = s[j] * inv * (pr.p > 0.0f ? z[j] : T(1));
          const T* vj = v + bn * SD + j * D;
          for (int64_t d = 0; d < D; ++d) oi[d] += w * vj[d];
        }
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
    std::vector<T> z(static_cast<size_t>(S), T(1)), ones(static_cast<size_t>(S), T(1));
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < pr.B * pr.N; ++bn) {
      const int64_t b = bn / pr.N, n = bn % pr.N;
      std::fill(dk + bn * SD, dk + (bn + 1) * SD, T(0));
      std::fill(dv + bn * SD, dv + (bn + 1) * SD, T(0));
      for (int64_t i = 0; i < S; ++i) {
        const T* qi = q + bn * SD + i * D;
        const T* gi = dout + bn * SD + i * D;
        T* dqi = dq + bn * SD + i * D;
        std::fill(dqi, dqi + D, T(0));
        const T Dr = dot(gi, out + bn * SD + i * D, D);
        const T li = T(lse[bn * S + i]);
        if (pr.p > 0.0f)
          dropout_span(z.data(), ones.data(), S, uint32_t(n * SS + i * S), pr.p, pr.key,
                       uint32_t(pr.ids[b]));
        for (int64_t j = 0; j < S; ++j) {
          const T* kj = k + bn * SD + j * D;
          const T* vj = v + bn * SD + j * D;
          const T pij = std::exp(dot(qi, kj, D) * T(scale) + T(pr.mask_at(b, j)) - li);
          const T dsij = pij * (z[j] * dot(gi, vj, D) - Dr) * T(scale);
          const T pd = pij * z[j];
          T* dkj = dk + bn * SD + j * D;
          T* dvj = dv + bn * SD + j * D;
          for (int64_t d = 0; d < D; ++d) {
            dqi[d] += dsij * kj[d];
            dkj[d] += dsij * qi[d];
            dvj[d] += pd * gi[d];
          }
        }
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
