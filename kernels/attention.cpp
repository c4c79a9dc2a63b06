#include "kernels/attention.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

struct Dims {
  int64_t B, N, S, D;
  int64_t Sq;  // query rows (materialized attention: the first Sq of S)
  Shape kv() const { return {B, N, S, D}; }
};

// q is the reference for dtype and device; every other tensor is checked against it. k and v are
// [B, N, S, D]; q is too, or (`first_queries`, materialized attention) [B, N, Sq, D] with Sq <= S,
// on the CPU.
Dims check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
               bool first_queries = false) {
  check_defined(op, "q", q);
  check_defined(op, "k", k);
  BR_CHECK(q.dim() == 4, "{}: q is {}, expected [B, N, S, D]", op, q.str());
  BR_CHECK(k.dim() == 4, "{}: k is {}, expected [B, N, S, D]", op, k.str());
  const Dims d{q.size(0), q.size(1), first_queries ? k.size(2) : q.size(2), q.size(3), q.size(2)};
  if (first_queries) {
    BR_CHECK(d.Sq <= d.S, "{}: q {} has more query rows than k {} has keys", op, q.str(), k.str());
    BR_CHECK(d.Sq == d.S || q.device() == Device::cpu,
             "{}: on CUDA q {} needs as many query rows as k {} has keys", op, q.str(), k.str());
  }
  const DType t = q.dtype();
  if (q.device() == Device::cpu)
    BR_CHECK(t == DType::f32 || t == DType::f64, "{}: CPU supports f32 and f64, q is {}", op,
             q.str());
  else
    BR_CHECK(t == DType::f32 || t == DType::bf16, "{}: CUDA supports f32 and bf16, q is {}", op,
             q.str());
  for (auto [name, x] : {std::pair<const char*, const Tensor*>{"k", &k}, {"v", &v}}) {
    check_shape(op, name, *x, d.kv());
    check_dtype(op, name, *x, t);
    check_same_device(op, q, *x);
  }
  return d;
}

void check_like(const char* op, const char* name, const Tensor& x, const Tensor& q,
                const Shape& shape, DType dtype) {
  check_shape(op, name, x, shape);
  check_dtype(op, name, x, dtype);
  check_same_device(op, q, x);
}

void check_mask_dropout(const char* op, const Dims& d, const Tensor& q, const Tensor& mask,
                        float dropout_p, const DropoutKey& key, const Tensor& example_ids) {
  if (mask.defined()) check_like(op, "mask", mask, q, {d.B, d.S}, DType::f32);
  BR_CHECK(dropout_p >= 0.0f && dropout_p <= 1.0f, "{}: dropout_p {} outside [0, 1]", op,
           dropout_p);
  if (dropout_p > 0.0f) check_like(op, "example_ids", example_ids, q, {d.B}, DType::i32);
  BR_CHECK(key.length == 0 || int64_t(key.length) >= d.S,
           "{}: the dropout key's row length {} is shorter than the {} keys of k", op, key.length,
           d.S);
  const int64_t L = attention_dropout_stride(key, uint32_t(d.S));
  BR_CHECK(d.N * L * L <= int64_t(UINT32_MAX),
           "{}: N·L·L = {} exceeds the 32-bit dropout element index", op, d.N * L * L);
}

void check_flash_cuda(const char* op, const Dims& d, const Tensor& q) {
  if (q.is_cuda())
    BR_CHECK(d.D == 64, "{}: the fused CUDA kernel needs head dim D = 64, q is {}", op, q.str());
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                       const DropoutKey& key, const Tensor& example_ids) {
  BR_PROFILE("attention_forward");
  const char* op = "attention_forward";
  const Dims d = check_qkv(op, q, k, v, true);
  check_like(op, "out", out, q, q.shape(), q.dtype());
  check_like(op, "probs", probs, q, {d.B, d.N, d.Sq, d.S}, q.dtype());
  check_mask_dropout(op, d, q, mask, dropout_p, key, example_ids);
  if (q.numel() == 0) return;
  if (q.device() == Device::cpu)
    return cpu::attention_forward(out, probs, q, k, v, mask, scale, dropout_p, key, example_ids);
#if BERTRAZOR_WITH_CUDA
  return cuda::attention_forward(out, probs, q, k, v, mask, scale, dropout_p, key, example_ids);
#endif
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                        float scale, float dropout_p, const DropoutKey& key,
                        const Tensor& example_ids) {
  BR_PROFILE("attention_backward");
  const char* op = "attention_backward";
  const Dims d = check_qkv(op, q, k, v, true);
  for (auto [name, x] : {std::pair<const char*, const Tensor*>{"dq", &dq}, {"dout", &dout}})
    check_like(op, name, *x, q, q.shape(), q.dtype());
  for (auto [name, x] : {std::pair<const char*, const Tensor*>{"dk", &dk}, {"dv", &dv}})
    check_like(op, name, *x, q, d.kv(), q.dtype());
  check_like(op, "probs", probs, q, {d.B, d.N, d.Sq, d.S}, q.dtype());
  check_mask_dropout(op, d, q, Tensor(), dropout_p, key, example_ids);
  if (q.numel() == 0) {  // no query: no gradient reaches k or v
    if (dk.numel()) dk.zero_();
    if (dv.numel()) dv.zero_();
    return;
  }
  if (q.device() == Device::cpu)
    return cpu::attention_backward(dq, dk, dv, dout, q, k, v, probs, scale, dropout_p, key,
                                   example_ids);
#if BERTRAZOR_WITH_CUDA
  return cuda::attention_backward(dq, dk, dv, dout, q, k, v, probs, scale, dropout_p, key,
                                  example_ids);
#endif
}

void flash_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                             const DropoutKey& key, const Tensor& example_ids) {
  BR_PROFILE("flash_attention_forward");
  const char* op = "flash_attention_forward";
  const Dims d = check_qkv(op, q, k, v);
  check_like(op, "out", out, q, q.shape(), q.dtype());
  check_like(op, "lse", lse, q, {d.B, d.N, d.S}, DType::f32);
  check_mask_dropout(op, d, q, mask, dropout_p, key, example_ids);
  check_flash_cuda(op, d, q);
  if (q.numel() == 0) return;
  if (q.device() == Device::cpu)
    return cpu::flash_attention_forward(out, lse, q, k, v, mask, scale, dropout_p, key,
                                        example_ids);
#if BERTRAZOR_WITH_CUDA
  return cuda::flash_attention_forward(out, lse, q, k, v, mask, scale, dropout_p, key,
                                       example_ids);
#endif
}

void flash_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                              const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& mask, float scale, float dropout_p,
                              const DropoutKey& key, const Tensor& example_ids) {
  BR_PROFILE("flash_attention_backward");
  const char* op = "flash_attention_backward";
  const Dims d = check_qkv(op, q, k, v);
  for (auto [name, x] : {std::pair<const char*, const Tensor*>{"dq", &dq}, {"dk", &dk},
                         {"dv", &dv}, {"dout", &dout}, {"out", &out}})
    check_like(op, name, *x, q, q.shape(), q.dtype());
  check_like(op, "lse", lse, q, {d.B, d.N, d.S}, DType::f32);
  check_mask_dropout(op, d, q, mask, dropout_p, key, example_ids);
  check_flash_cuda(op, d, q);
  if (q.numel() == 0) return;
  if (q.device() == Device::cpu)
    return cpu::flash_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, mask, scale,
                                         dropout_p, key, example_ids);
#if BERTRAZOR_WITH_CUDA
  return cuda::flash_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, mask, scale,
                                        dropout_p, key, example_ids);
#endif
}

}  // namespace br
