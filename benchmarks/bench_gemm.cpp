// GEMM throughput on BERT-base linear-layer shapes (M = B*S tokens), in the three orientations a
// linear layer runs: forward out = inp·Wᵀ, dinp = dout·W, dweight += doutᵀ·inp. The ceiling is the
// rate measured in the same run on a large square product. Times are medians after one warm-up.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "benchmarks/bench_common.h"
#include "core/device.h"
#include "core/tensor.h"
#include "kernels/cast.h"
#include "kernels/gemm.h"

using namespace br;

namespace {

using bench::median_seconds;
Tensor random_input(const Shape& shape, DType dtype, Device d) {
  return bench::random_tensor(shape, dtype, d, 1234, false);
}

struct Config {
  Device device;
  DType dtype;
  bool tf32;
  std::string name;
  bool cpu_bf16 = false;  // f32 tensors, products in bf16 with f32 accumulation (--bf16 on the CPU)
};

// Seconds for C[M,N] = op(A)·op(B) with the operands laid out as that orientation needs.
double time_gemm(const Config& c, int64_t M, int64_t K, int64_t N, bool ta, bool tb, float beta,
                 int reps) {
  Tensor A = random_input(ta ? Shape{K, M} : Shape{M, K}, c.dtype, c.device);
  Tensor B = random_input(tb ? Shape{N, K} : Shape{K, N}, c.dtype, c.device);
  Tensor C = random_input({M, N}, c.dtype, c.device);
  set_cuda_tf32(c.tf32);
  set_cpu_bf16_matmul(c.cpu_bf16);
  double s = median_seconds(c.device, reps, [&] { matmul(C, A, ta, B, tb, 1.0f, beta); });
  set_cuda_tf32(false);
  set_cpu_bf16_matmul(false);
  return s;
}

void run(const Config& c, int64_t peak_n, int reps) {
  const double peak_s = time_gemm(c, peak_n, peak_n, peak_n, false, false, 0.0f, reps);
  const double peak = 2.0 * double(peak_n) * double(peak_n) * double(peak_n) / peak_s / 1e9;
  auto row = [&](const std::string& what, double seconds, double flops) {
    const double gf = flops / seconds / 1e9;
    std::printf("%-14s %-34s %10.3f %10.1f %8.2f\n", c.name.c_str(), what.c_str(), 1e3 * seconds,
                gf, gf / peak);
  };
  row("square " + std::to_string(peak_n) + " (ceiling)", peak_s,
      2.0 * double(peak_n) * double(peak_n) * double(peak_n));
  struct Shape3 {
    int64_t M, K, N;
  };
  // bert-base at 1024 tokens; MiniLM at 2048 tokens (batch 16 x seq 128).
  for (Shape3 s : {Shape3{1024, 768, 768}, Shape3{1024, 768, 3072}, Shape3{1024, 3072, 768},
                   Shape3{2048, 384, 384}, Shape3{2048, 384, 1536}, Shape3{2048, 1536, 384}}) {
    const double flops = 2.0 * double(s.M) * double(s.K) * double(s.N);
    const std::string mkn =
        std::to_string(s.M) + "x" + std::to_string(s.K) + "x" + std::to_string(s.N);
    // forward: out[M,N] = inp[M,K]·W[N,K]ᵀ
    row(mkn + " fwd inp*W^T", time_gemm(c, s.M, s.K, s.N, false, true, 0.0f, reps), flops);
    // dinp[M,K] = dout[M,N]·W[N,K]
    row(mkn + " dinp dout*W", time_gemm(c, s.M, s.N, s.K, false, false, 0.0f, reps), flops);
    // dweight[N,K] += dout[M,N]ᵀ·inp[M,K]
    row(mkn + " dW += dout^T*inp", time_gemm(c, s.N, s.M, s.K, true, false, 1.0f, reps), flops);
  }
}

}  // namespace

int main() {
  std::printf("%-14s %-34s %10s %10s %8s\n", "backend", "M x K x N, orientation", "ms", "GFLOP/s",
              "of peak");
  run({Device::cpu, DType::f32, false, "cpu f32"}, 2048, 9);
  if (cpu_bf16_matmul_native())
    run({Device::cpu, DType::f32, false, "cpu bf16", true}, 2048, 9);
  else
    std::printf("cpu bf16: skipped (oneDNN has no bf16 matmul for this CPU)\n");
  if (!cuda_available()) {
    std::printf("cuda: skipped (no CUDA device)\n");
    return 0;
  }
  for (const Config& c : {Config{Device::cuda, DType::f32, false, "cuda f32"},
                          Config{Device::cuda, DType::f32, true, "cuda tf32"},
                          Config{Device::cuda, DType::bf16, false, "cuda bf16"}})
    run(c, 8192, 20);
  return 0;
}
