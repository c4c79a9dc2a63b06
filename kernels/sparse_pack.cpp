#include "kernels/sparse_pack.h"
#include "kernels/profile.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

bool value_dtype_ok(DType value, DType x) {
  return value == DType::f32 || value == DType::f16 || value == DType::bf16 ||
         (value == DType::f64 && x == DType::f64);
}

// The pack's tensors agree with its shape, batch, n and k.
void check_pack(const char* op, const SparsePack& p) {
  check_defined(op, "mask", p.mask);
  check_defined(op, "values", p.values);
  BR_CHECK(p.batch >= 1 && p.n >= 1 && p.batch * p.n == shape_numel(p.shape) && p.shape.size() >= 1 &&
               p.shape[0] == p.batch,
           "{}: pack of shape {} has batch {} and n {}", op, shape_str(p.shape), p.batch, p.n);
  BR_CHECK(p.k >= 1 && p.k <= p.n, "{}: pack keeps k={} of n={} per sample", op, p.k, p.n);
  check_dtype(op, "mask", p.mask, DType::u8);
  check_shape(op, "mask", p.mask, {p.batch, sparse_mask_row_bytes(p.n)});
  BR_CHECK(value_dtype_ok(p.values.dtype(), p.dtype), "{}: values {} for a {} tensor", op,
           p.values.str(), dtype_name(p.dtype));
  check_shape(op, "values", p.values, {p.batch * p.k});
  check_same_device(op, p.mask, p.values);
}

}  // namespace

int64_t backrazor_keep_count(int64_t n, double prune_ratio) {
  BR_CHECK(n >= 0, "backrazor_keep_count: n={} must be >= 0", n);
  BR_CHECK(std::isfinite(prune_ratio) && prune_ratio >= 0.0 && prune_ratio <= 1.0,
           "backrazor_keep_count: prune_ratio {} not in [0, 1]", prune_ratio);
  if (n == 0) return 0;
  int64_t k = n - int64_t(std::floor(double(n) * prune_ratio)) + 1;
  return std::clamp<int64_t>(k, 1, n);
}

int64_t SparsePack::bytes() const { return int64_t(mask.nbytes() + values.nbytes()); }

int64_t sparse_pack_bytes(int64_t batch, int64_t n, double prune_ratio, DType value_dtype) {
  BR_CHECK(batch >= 0 && n >= 0, "sparse_pack_bytes: batch {} and n {} must be >= 0", batch, n);
  return batch * (sparse_mask_row_bytes(n) +
                  backrazor_keep_count(n, prune_ratio) * int64_t(dtype_size(value_dtype)));
}

SparsePack pack_topk(const Tensor& x, double prune_ratio, DType value_dtype, MemCategory category) {
  BR_PROFILE("pack_topk");
  check_defined("pack_topk", "x", x);
  BR_CHECK(x.dim() >= 1 && x.numel() > 0,
           "pack_topk: x {} needs a batch dimension and at least one element", x.str());
  BR_CHECK(is_floating(x.dtype()), "pack_topk: x {} must be floating", x.str());
  BR_CHECK(value_dtype_ok(value_dtype, x.dtype()),
           "pack_topk: value dtype {} not supported for x {} (f32, f16, bf16; f64 only for f64 x)",
           dtype_name(value_dtype), x.str());
  BR_CHECK(std::isfinite(prune_ratio) && prune_ratio >= 0.0 && prune_ratio <= 1.0,
           "pack_topk: prune_ratio {} not in [0, 1] (x {})", prune_ratio, x.str());
  SparsePack p;
  p.shape = x.shape();
  p.dtype = x.dtype();
  p.batch = x.size(0);
  p.n = x.numel() / p.batch;
  BR_CHECK(p.n < (int64_t(1) << 31), "pack_topk: {} elements per sample (x {}) exceeds 2^31 - 1",
           p.n, x.str());
  p.k = backrazor_keep_count(p.n, prune_ratio);
  p.mask = Tensor::empty({p.batch, sparse_mask_row_bytes(p.n)}, DType::u8, x.device(), category);
  p.values = Tensor::empty({p.batch * p.k}, value_dtype, x.device(), category);
  if (x.device() == Device::cpu) {
    cpu::pack_topk(p, x);
  } else {
#if BERTRAZOR_WITH_CUDA
    cuda::pack_topk(p, x);
#endif
  }
  return p;
}

void pack_topk_into(const SparsePack& p, const Tensor& x) {
  BR_PROFILE("pack_topk");
  check_pack("pack_topk_into", p);
  check_defined("pack_topk_into", "x", x);
  BR_CHECK(x.shape() == p.shape && x.dtype() == p.dtype,
           "pack_topk_into: x {} for a pack of {} {}", x.str(), dtype_name(p.dtype),
           shape_str(p.shape));
  check_same_device("pack_topk_into", x, p.mask);
  if (x.device() == Device::cpu) return cpu::pack_topk(p, x);
#if BERTRAZOR_WITH_CUDA
  return cuda::pack_topk(p, x);
#endif
}

void unpack(const Tensor& out, const SparsePack& p) {
  BR_PROFILE("unpack");
  check_pack("unpack", p);
  check_defined("unpack", "out", out);
  check_shape("unpack", "out", out, p.shape);
  check_dtype("unpack", "out", out, p.dtype);
  check_same_device("unpack", out, p.mask);
  if (out.device() == Device::cpu) return cpu::unpack(out, p);
#if BERTRAZOR_WITH_CUDA
  return cuda::unpack(out, p);
#endif
}

Tensor unpack(const SparsePack& p, MemCategory category) {
  BR_PROFILE("unpack");
  check_pack("unpack", p);
  Tensor out = Tensor::empty(p.shape, p.dtype, p.mask.device(), category);
  unpack(out, p);
  return out;
}

}  // namespace br
