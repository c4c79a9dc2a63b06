#include "kernels/adamw.h"
#include "kernels/profile.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "kernels/adamw_scalars.h"
#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

double python_double(float x) { return std::strtod(fmt::format("{}", x).c_str(), nullptr); }

AdamWScalars adamw_scalars(const AdamWConfig& cfg, int64_t step) {
  const double lr = python_double(cfg.lr), b1 = python_double(cfg.beta1);
  const double b2 = python_double(cfg.beta2), wd = python_double(cfg.weight_decay);
  const double bc1 = 1.0 - std::pow(b1, double(step)), bc2 = 1.0 - std::pow(b2, double(step));
  AdamWScalars s{};
  s.hf = cfg.hf_variant;
  s.beta1 = cfg.beta1;
  s.beta2 = cfg.beta2;
  s.eps = cfg.eps;
  s.w1 = float(1.0 - b1);
  s.w2 = float(1.0 - b2);
  s.decay = float(1.0 - lr * wd);
  s.hf_decay = wd > 0.0 ? float(-lr * wd) : 0.0f;
  s.neg_step = cfg.hf_variant ? float(-(lr * std::sqrt(bc2) / bc1)) : float(-(lr / bc1));
  s.bc2_sqrt = float(std::sqrt(bc2));
  return s;
}

namespace {

void check_group(const char* op, size_t i, const Tensor& p, const Tensor& g, const Tensor& m,
                 const Tensor& v, Device device) {
  BR_CHECK(p.defined(), "{}: param {} is undefined", op, i);
  check_dtype(op, "param", p, DType::f32);
  for (auto [name, x] : {std::pair<const char*, const Tensor*>{"grad", &g}, {"m", &m}, {"v", &v}}) {
    BR_CHECK(x->defined(), "{}: {} {} is undefined (param {})", op, name, i, p.str());
    BR_CHECK(x->shape() == p.shape() && x->dtype() == DType::f32,
             "{}: {} {} is {}, expected f32{} like param {}", op, name, i, x->str(),
             shape_str(p.shape()), p.str());
  }
  for (const Tensor* x : {&p, &g, &m, &v})
    BR_CHECK(x->device() == device, "{}: tensor {} is {}, expected on {}", op, i, x->str(),
             device_name(device));
}

void check_config(const AdamWConfig& cfg, int64_t step) {
  BR_CHECK(step >= 1, "adamw_step: step {} must count from 1", step);
  BR_CHECK(cfg.beta1 >= 0.0f && cfg.beta1 < 1.0f && cfg.beta2 >= 0.0f && cfg.beta2 < 1.0f,
           "adamw_step: betas ({}, {}) must lie in [0, 1)", cfg.beta1, cfg.beta2);
  BR_CHECK(cfg.eps >= 0.0f && cfg.lr >= 0.0f && cfg.weight_decay >= 0.0f,
           "adamw_step: lr {}, eps {}, weight_decay {} must be non-negative", cfg.lr, cfg.eps,
           cfg.weight_decay);
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWConfig& cfg, int64_t step) {
  BR_PROFILE("adamw_step");
  adamw_step(std::vector<Tensor>{param}, std::vector<Tensor>{grad}, std::vector<Tensor>{m},
             std::vector<Tensor>{v}, std::vector<bool>{true}, cfg, step);
}

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& ms, const std::vector<Tensor>& vs,
                const std::vector<bool>& decay, const AdamWConfig& cfg, int64_t step) {
  BR_PROFILE("adamw_step");
  const char* op = "adamw_step";
  const size_t n = params.size();
  BR_CHECK(grads.size() == n && ms.size() == n && vs.size() == n && decay.size() == n,
           "{}: {} params but {} grads, {} m, {} v, {} decay flags", op, n, grads.size(), ms.size(),
           vs.size(), decay.size());
  check_config(cfg, step);
  if (n == 0) return;
  BR_CHECK(params[0].defined(), "{}: param 0 is undefined", op);
  const Device device = params[0].device();
  for (size_t i = 0; i < n; ++i) check_group(op, i, params[i], grads[i], ms[i], vs[i], device);
  const AdamWScalars s = adamw_scalars(cfg, step);
  if (device == Device::cpu) return cpu::adamw_step(params, grads, ms, vs, decay, s);
#if BERTRAZOR_WITH_CUDA
  return cuda::adamw_step(params, grads, ms, vs, decay, s);
#endif
}

}  // namespace br
