#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/cpu_math.h"

#include <cmath>
#include <limits>
#include <type_traits>

namespace br::cpu {

namespace {

// Per row: z = scale·s + mask[b]; p = exp(z − max z) / Σ exp(z − max z); a row with max z = −inf
// (every key masked by −inf) gives zeros.
template <typename T>
void forward_impl(T* probs, const T* scores, const float* mask, T scale, int64_t rows,
                  int64_t rows_per_batch, int64_t Sk) {
#pragma omp parallel for if (rows * Sk > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = scores + r * Sk;
    const float* mk = mask ? mask + (r / rows_per_batch) * Sk : nullptr;
    T* p = probs + r * Sk;
    T mx = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < Sk; ++k) {
      p[k] = scale * s[k] + (mk ? T(mk[k]) : T(0));
      mx = std::max(mx, p[k]);
    }
    if (mx == -std::numeric_limits<T>::infinity()) {
      for (int64_t k = 0; k < Sk; ++k) p[k] = 0;
      continue;
    }
    // f32: the vectorized exp of the attention kernel (kernels/cpu/cpu_math.h, within 1 ulp; a
    // libm expf per element ran at a tenth of the copy bandwidth), summed in 16 interleaved
    // partial sums so that the loop vectorizes (a fixed order: the same bits at any thread count).
    T sum = 0;
    if constexpr (std::is_same_v<T, float>) {
      constexpr int64_t W = 16;
      float part[W] = {};
      int64_t k = 0;
      for (; k + W <= Sk; k += W) {
#pragma omp simd
        for (int64_t j = 0; j < W; ++j) {
          p[k + j] = exp_nonpositive(p[k + j] - mx);
          part[j] += p[k + j];
        }
      }
      for (; k < Sk; ++k) {
        p[k] = exp_nonpositive(p[k] - mx);
        part[0] += p[k];
      }
      for (int64_t j = 0; j < W; ++j) sum += part[j];
    } else {
      for (int64_t k = 0; k < Sk; ++k) {
        p[k] = std::exp(p[k] - mx);
        sum += p[k];
      }
    }
    const T inv = T(1) / sum;
    for (int64_t k = 0; k < Sk; ++k) p[k] *= inv;
  }
}

// ds = scale·p·(dp − Σ_k dp·p)
template <typename T>
void backward_impl(T* dscores, const T* dprobs, const T* probs, T scale, int64_t rows, int64_t Sk) {
#pragma omp parallel for if (rows * Sk > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const T* dp = dprobs + r * Sk;
    const T* p = probs + r * Sk;
    T dot = 0;
    for (int64_t k = 0; k < Sk; ++k) dot += dp[k] * p[k];
    T* ds = dscores + r * Sk;
    for (int64_t k = 0; k < Sk; ++k) ds[k] = scale * p[k] * (dp[k] - dot);
  }
}

}  // namespace

void softmax_forward(const Tensor& probs, const Tensor& scores, const Tensor& mask, float scale,
                     int64_t rows_per_batch, int64_t Sk) {
  const float* mk = mask.defined() ? mask.data<float>() : nullptr;
  const int64_t rows = probs.numel() / Sk;
  switch (probs.dtype()) {
    case DType::f32:
      return forward_impl(probs.data<float>(), scores.data<float>(), mk, scale, rows,
                          rows_per_batch, Sk);
    case DType::f64:
      return forward_impl(probs.data<double>(), scores.data<double>(), mk, double(scale), rows,
                          rows_per_batch, Sk);
    default: fail("softmax_forward: CPU supports f32 and f64, got {}", probs.str());
  }
}

void softmax_backward(const Tensor& dscores, const Tensor& dprobs, const Tensor& probs, float scale,
                      int64_t Sk) {
  const int64_t rows = probs.numel() / Sk;
  switch (probs.dtype()) {
    case DType::f32:
      return backward_impl(dscores.data<float>(), dprobs.data<float>(), probs.data<float>(), scale,
                           rows, Sk);
    case DType::f64:
      return backward_impl(dscores.data<double>(), dprobs.data<double>(), probs.data<double>(),
                           double(scale), rows, Sk);
    default: fail("softmax_backward: CPU supports f32 and f64, got {}", probs.str());
  }
}

}  // namespace br::cpu
