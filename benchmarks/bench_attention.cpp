// Attention forward/backward, materialized and flash, at MiniLM (B=16, N=12, D=32) and bert-base
// (B=8, N=12, D=64) shapes, S = 8, 32, 128, 512, on the CPU and, when present, on CUDA (f32 and
// bf16; the fused CUDA kernel only at D = 64). FLOPs counted are the algorithm's matrix
// products, the same for both forms: forward 4·B·N·S²·D (Q·Kᵀ and P·V), backward 8·B·N·S²·D
// (dV, dP, dQ, dK); flash's recomputation of Q·Kᵀ is not counted, so its GFLOP/s are comparable.
// The ceiling is a square f32 (CPU) or bf16 (CUDA) matmul of 2048³ measured in the same run.
// Times are medians after one warm-up; "fwd+bwd" is the sum of the two medians. The last column
// is the achieved rate over the ceiling (issue 17: attention fwd+bwd >= 0.5 of the GEMM rate).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
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

struct Model {
  const char* name;
  int64_t B, N, D;
};

void run(Device d, DType dtype, const Model& mdl, int64_t S, float p, int reps, double ceiling) {
  const int64_t B = mdl.B, N = mdl.N, D = mdl.D;
  const Shape sh = {B, N, S, D};
  Tensor q = random_input(sh, dtype, d, 3), k = random_input(sh, dtype, d, 4);
  Tensor v = random_input(sh, dtype, d, 5), g = random_input(sh, dtype, d, 6);
  std::vector<float> m;
  for (int64_t b = 0; b < B; ++b)  // sample b has its last min(S - 1, 2b) keys padded
    for (int64_t j = 0; j < S; ++j)
      m.push_back(j < S - std::min<int64_t>(S - 1, 2 * b) ? 0.0f : std::numeric_limits<float>::lowest());
  Tensor mask = Tensor::from_host(m, {B, S}).to(d);
  std::vector<int32_t> idv;
  for (int64_t b = 0; b < B; ++b) idv.push_back(int32_t(b));
  Tensor ids = Tensor::from_host(idv, {B}).to(d);
  const DropoutKey key{42, 1, 0};
  const float scale = 1.0f / std::sqrt(float(D));
  Tensor out = Tensor::empty(sh, dtype, d), probs = Tensor::empty({B, N, S, S}, dtype, d);
  Tensor lse = Tensor::empty({B, N, S}, DType::f32, d);
  Tensor dq = Tensor::empty(sh, dtype, d), dk = Tensor::empty(sh, dtype, d), dv = Tensor::empty(sh, dtype, d);
  const double fwd_flop = 4.0 * B * N * S * S * D, bwd_flop = 2 * fwd_flop;
  const std::string shape = fmt::format("{} {} {} [{},{},{},{}] p={}", device_name(d),
                                        dtype_name(dtype), mdl.name, B, N, S, D, p);
  auto print = [&](const char* op, double s, double flop) {
    const double gf = flop / s / 1e9;
    std::printf("%-44s %-18s %10.3f %10.1f %8.3f\n", shape.c_str(), op, s * 1e3, gf, gf / ceiling);
  };
  const bool flash_ok = d == Device::cpu || D == 64;
  for (int flash = 0; flash < (flash_ok ? 2 : 1); ++flash) {
    double fs, bs;
    if (flash) {
      fs = median_seconds(d, reps, [&] { flash_attention_forward(out, lse, q, k, v, mask, scale, p, key, ids); });
      flash_attention_forward(out, lse, q, k, v, mask, scale, p, key, ids);
      bs = median_seconds(d, reps, [&] { flash_attention_backward(dq, dk, dv, g, q, k, v, out, lse, mask, scale, p, key, ids); });
    } else {
      fs = median_seconds(d, reps, [&] { attention_forward(out, probs, q, k, v, mask, scale, p, key, ids); });
      attention_forward(out, probs, q, k, v, mask, scale, p, key, ids);
      bs = median_seconds(d, reps, [&] { attention_backward(dq, dk, dv, g, q, k, v, probs, scale, p, key, ids); });
    }
    const char* nm = flash ? "flash" : "materialized";
    print(fmt::format("{} fwd", nm).c_str(), fs, fwd_flop);
    print(fmt::format("{} bwd", nm).c_str(), bs, bwd_flop);
    print(fmt::format("{} fwd+bwd", nm).c_str(), fs + bs, fwd_flop + bwd_flop);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --seq 128,512 (default 8,32,128,512), --reps N (default 5), --p P (dropout, default 0.1)
  std::vector<int64_t> seqs = {8, 32, 128, 512};
  int reps = 5;
  float p = 0.1f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seq") {
      seqs.clear();
      std::string list = argv[i + 1];
      for (size_t at = 0; at <= list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        seqs.push_back(std::stoll(list.substr(at, comma - at)));
        at = comma + 1;
      }
    } else if (a == "--reps") {
      reps = std::stoi(argv[i + 1]);
    } else if (a == "--p") {
      p = std::stof(argv[i + 1]);
    } else {
      std::fprintf(stderr, "bench_attention: unknown flag %s (use --seq LIST, --reps N, --p P)\n",
                   argv[i]);
      return 2;
    }
  }
  const Model models[] = {{"minilm", 16, 12, 32}, {"bert-base", 8, 12, 64}};
  std::printf("%-44s %-18s %10s %10s %8s\n", "shape", "op", "ms", "GFLOP/s", "of gemm");
  const double cpu_ceiling = ceiling_gflops(Device::cpu, DType::f32, 3);
  std::printf("%-44s %-18s %10s %10.1f %8.3f\n", "cpu f32 matmul 2048^3", "gemm rate", "", cpu_ceiling, 1.0);
  for (const Model& mdl : models)
    for (int64_t S : seqs) run(Device::cpu, DType::f32, mdl, S, p, reps, cpu_ceiling);
  const double again = ceiling_gflops(Device::cpu, DType::f32, 3);
  std::printf("%-44s %-18s %10s %10.1f %8.3f\n", "cpu f32 matmul 2048^3 (again, at the end)", "gemm rate", "", again, again / cpu_ceiling);
  if (cuda_available()) {
    for (DType dt : {DType::f32, DType::bf16}) {
      const double ceil = ceiling_gflops(Device::cuda, dt, 10);
      std::printf("%-44s %-18s %10s %10.1f %8.3f\n",
                  fmt::format("cuda {} matmul 2048^3", dtype_name(dt)).c_str(), "gemm rate", "", ceil, 1.0);
      for (const Model& mdl : models)
        for (int64_t S : seqs) run(Device::cuda, dt, mdl, S, p, 20, ceil);
    }
  }
  return 0;
}
