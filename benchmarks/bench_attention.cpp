// Attention forward/backward, materialized and flash, at BERT shapes (B=8, N=12, D=64, S=128/512)
// on the CPU and, when present, on CUDA (f32 and bf16). FLOPs counted are the algorithm's matrix
// products, the same for both forms: forward 4·B·N·S²·D (Q·Kᵀ and P·V), backward 8·B·N·S²·D
// (dV, dP, dQ, dK); flash's recomputation of Q·Kᵀ is not counted, so its GFLOP/s are comparable.
// The ceiling is a square f32 (CPU) or bf16 (CUDA) matmul of 2048³ measured in the same run.
// Times are medians after one warm-up.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "benchmarks/bench_common.h"
#include "core/device.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/gemm.h"

using namespace br;

namespace {

using bench::median_seconds;
Tensor random_input(const Shape& shape, DType dtype, Device d, uint32_t seed) {
  return bench::random_tensor(shape, dtype, d, seed, true);
}

double ceiling_gflops(Device d, DType dtype, int reps) {
  const int64_t n = 2048;
  Tensor a = random_input({n, n}, dtype, d, 1), b = random_input({n, n}, dtype, d, 2);
  Tensor c = Tensor::empty({n, n}, dtype, d);
  const double s = median_seconds(d, reps, [&] { matmul(c, a, false, b, false); });
  return 2.0 * double(n) * n * n / s / 1e9;
}

void run(Device d, DType dtype, int64_t S, float p, int reps, double ceiling) {
  const int64_t B = 8, N = 12, D = 64;
  const Shape sh = {B, N, S, D};
  Tensor q = random_input(sh, dtype, d, 3), k = random_input(sh, dtype, d, 4);
  Tensor v = random_input(sh, dtype, d, 5), g = random_input(sh, dtype, d, 6);
  std::vector<float> m;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < S; ++j) m.push_back(j < S - 16 * b ? 0.0f : std::numeric_limits<float>::lowest());
  Tensor mask = Tensor::from_host(m, {B, S}).to(d);
  std::vector<int32_t> idv;
  for (int64_t b = 0; b < B; ++b) idv.push_back(int32_t(b));
  Tensor ids = Tensor::from_host(idv, {B}).to(d);
  const DropoutKey key{42, 1, 0};
  const float scale = 0.125f;
  Tensor out = Tensor::empty(sh, dtype, d), probs = Tensor::empty({B, N, S, S}, dtype, d);
  Tensor lse = Tensor::empty({B, N, S}, DType::f32, d);
  Tensor dq = Tensor::empty(sh, dtype, d), dk = Tensor::empty(sh, dtype, d), dv = Tensor::empty(sh, dtype, d);
  const double fwd_flop = 4.0 * B * N * S * S * D, bwd_flop = 2 * fwd_flop;
  struct Row { const char* name; double flop; std::function<void()> f; };
  std::vector<Row> rows = {
      {"attention fwd", fwd_flop, [&] { attention_forward(out, probs, q, k, v, mask, scale, p, key, ids); }},
      {"attention bwd", bwd_flop, [&] { attention_backward(dq, dk, dv, g, q, k, v, probs, scale, p, key, ids); }},
      {"flash fwd", fwd_flop, [&] { flash_attention_forward(out, lse, q, k, v, mask, scale, p, key, ids); }},
      {"flash bwd", bwd_flop, [&] { flash_attention_backward(dq, dk, dv, g, q, k, v, out, lse, mask, scale, p, key, ids); }},
  };
  for (Row& r : rows) {
    if (std::string(r.name) == "flash bwd") flash_attention_forward(out, lse, q, k, v, mask, scale, p, key, ids);
    if (std::string(r.name) == "attention bwd") attention_forward(out, probs, q, k, v, mask, scale, p, key, ids);
    const double s = median_seconds(d, reps, r.f);
    const double gf = r.flop / s / 1e9;
    const std::string shape = fmt::format("{} {} [8,12,{},64] p={}", device_name(d), dtype_name(dtype), S, p);
    std::printf("%-34s %-14s %10.3f %10.1f %8.3f\n", shape.c_str(), r.name, s * 1e3, gf, gf / ceiling);
  }
}

}  // namespace

int main() {
  std::printf("%-34s %-14s %10s %10s %8s\n", "shape", "op", "ms", "GFLOP/s", "of ceil");
  const double cpu_ceiling = ceiling_gflops(Device::cpu, DType::f32, 3);
  std::printf("%-34s %-14s %10s %10.1f %8.3f\n", "cpu f32 matmul 2048^3", "ceiling", "", cpu_ceiling, 1.0);
  for (int64_t S : {128, 512}) run(Device::cpu, DType::f32, S, 0.1f, 3, cpu_ceiling);
  if (cuda_available()) {
    for (DType dt : {DType::f32, DType::bf16}) {
      const double ceil = ceiling_gflops(Device::cuda, dt, 10);
      std::printf("%-34s %-14s %10s %10.1f %8.3f\n",
                  fmt::format("cuda {} matmul 2048^3", dtype_name(dt)).c_str(), "ceiling", "", ceil, 1.0);
      for (int64_t S : {128, 512}) run(Device::cuda, dt, S, 0.1f, 20, ceil);
    }
  }
  return 0;
}
