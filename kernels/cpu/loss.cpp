#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>

namespace br::cpu {

namespace {

void check_labels(const char* op, const int32_t* labels, int64_t B, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    BR_CHECK(labels[b] >= 0 && labels[b] < C, "{}: label {} in row {} is outside [0, C={})", op,
             labels[b], b, C);
}

template <typename T>
T logsumexp(const T* z, int64_t C) {
  T mx = z[0];
  for (int64_t c = 1; c < C; ++c) mx = std::max(mx, z[c]);
  T s = 0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(z[c] - mx);
  return mx + std::log(s);
}

// loss = (1/B) Σ_b (logsumexp(z_b) − z_b[y_b]), summed in double
template <typename T>
double cross_entropy_impl(const T* logits, const int32_t* labels, int64_t B, int64_t C) {
  double s = 0;
  for (int64_t b = 0; b < B; ++b) {
    const T* z = logits + b * C;
    s += double(logsumexp(z, C) - z[labels[b]]);
  }
  return s / double(B);
}

// dz = dloss·(softmax(z) − onehot(y))/B
template <typename T>
void cross_entropy_backward_impl(T* dlogits, const T* logits, const int32_t* labels, T dloss,
                                 int64_t B, int64_t C) {
  for (int64_t b = 0; b < B; ++b) {
    const T* z = logits + b * C;
    T* dz = dlogits + b * C;
    const T lse = logsumexp(z, C);
    for (int64_t c = 0; c < C; ++c)
      dz[c] = dloss * (std::exp(z[c] - lse) - (c == labels[b] ? T(1) : T(0))) / T(B);
  }
}

template <typename T>
double mse_impl(const T* preds, const T* targets, int64_t B) {
  double s = 0;
  for (int64_t b = 0; b < B; ++b) {
    const double d = double(preds[b]) - double(targets[b]);
    s += d * d;
  }
  return s / double(B);
}

template <typename T>
void mse_backward_impl(T* dpreds, const T* preds, const T* targets, T dloss, int64_t B) {
  for (int64_t b = 0; b < B; ++b) dpreds[b] = dloss * T(2) * (preds[b] - targets[b]) / T(B);
}

void store_loss(const Tensor& loss, double v) {
  if (loss.dtype() == DType::f64)
    *loss.data<double>() = v;
  else
    *loss.data<float>() = float(v);
}

}  // namespace

void cross_entropy_forward(const Tensor& loss, const Tensor& logits, const Tensor& labels) {
  const int64_t B = logits.size(0), C = logits.size(1);
  const int32_t* y = labels.data<int32_t>();
  check_labels("cross_entropy_forward", y, B, C);
  switch (logits.dtype()) {
    case DType::f32: return store_loss(loss, cross_entropy_impl(logits.data<float>(), y, B, C));
    case DType::f64: return store_loss(loss, cross_entropy_impl(logits.data<double>(), y, B, C));
    default: fail("cross_entropy_forward: CPU supports f32 and f64, got {}", logits.str());
  }
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                            float dloss) {
  const int64_t B = logits.size(0), C = logits.size(1);
  const int32_t* y = labels.data<int32_t>();
  check_labels("cross_entropy_backward", y, B, C);
  switch (logits.dtype()) {
    case DType::f32:
      return cross_entropy_backward_impl(dlogits.data<float>(), logits.data<float>(), y, dloss, B, C);
    case DType::f64:
      return cross_entropy_backward_impl(dlogits.data<double>(), logits.data<double>(), y,
                                         double(dloss), B, C);
    default: fail("cross_entropy_backward: CPU supports f32 and f64, got {}", logits.str());
  }
}

void mse_forward(const Tensor& loss, const Tensor& preds, const Tensor& targets) {
  const int64_t B = preds.numel();
  switch (preds.dtype()) {
    case DType::f32: return store_loss(loss, mse_impl(preds.data<float>(), targets.data<float>(), B));
    case DType::f64:
      return store_loss(loss, mse_impl(preds.data<double>(), targets.data<double>(), B));
    default: fail("mse_forward: CPU supports f32 and f64, got {}", preds.str());
  }
}

void mse_backward(const Tensor& dpreds, const Tensor& preds, const Tensor& targets, float dloss) {
  const int64_t B = preds.numel();
  switch (preds.dtype()) {
    case DType::f32:
      return mse_backward_impl(dpreds.data<float>(), preds.data<float>(), targets.data<float>(),
                               dloss, B);
    case DType::f64:
      return mse_backward_impl(dpreds.data<double>(), preds.data<double>(), targets.data<double>(),
                               double(dloss), B);
    default: fail("mse_backward: CPU supports f32 and f64, got {}", preds.str());
  }
}

}  // namespace br::cpu
