// Pointwise and row ops at BERT-base shapes (B·S = 4096 rows, H = 768, F = 3072, softmax
// [8,12,512,512]) against the copy bandwidth measured first on the same device in the same run.
// Traffic counted: the bytes each op must read and write once (inputs + outputs; per-row stats
// and parameters ignored). Times are medians after one warm-up.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "benchmarks/bench_common.h"
#include "core/device.h"
#include "core/tensor.h"
#include "kernels/cast.h"
#include "kernels/dropout.h"
#include "kernels/embedding.h"
#include "kernels/bias.h"
#include "kernels/fused.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"

using namespace br;

namespace {

using bench::median_seconds;
Tensor randn(const Shape& shape, DType dt, Device d, uint64_t seed) {
  return bench::random_tensor(shape, dt, d, static_cast<uint32_t>(seed), true);
}

Tensor ids_for(int64_t M, int64_t V, Device d, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::vector<int32_t> v(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) v[size_t(m)] = (m % 512) > 128 ? 0 : int32_t(rng() % uint32_t(V));
  return Tensor::from_host(v, {M}, d);
}

struct Row {
  std::string op, shape;
  double seconds, bytes;
};

void run(Device d, DType dt, int reps) {
  const int64_t M = 4096, H = 768, F = 3072, V = 30522;
  const double es = double(dtype_size(dt));
  std::vector<Row> rows;
  auto add = [&](const std::string& op, const Shape& s, double bytes, const std::function<void()>& f) {
    rows.push_back({op, shape_str(s), median_seconds(d, reps, f), bytes});
  };

  Tensor big = randn({M, F}, dt, d, 1), big2 = Tensor::empty({M, F}, dt, d);
  const double copy_s = median_seconds(d, reps, [&] { big2.copy_from(big); });
  const double copy_gbs = 2.0 * double(big.nbytes()) / copy_s / 1e9;
  rows.push_back({"copy", shape_str({M, F}), copy_s, 2.0 * double(big.nbytes())});

  {
    Tensor g = randn({M, F}, dt, d, 2), out = Tensor::empty({M, F}, dt, d);
    add("gelu_forward", {M, F}, 2 * es * M * F, [&] { gelu_forward(out, big); });
    add("gelu_backward", {M, F}, 3 * es * M * F, [&] { gelu_backward(out, g, big); });
  }
  {
    Tensor inp = randn({M, H}, dt, d, 3), res = randn({M, H}, dt, d, 4), out = Tensor::empty({M, H}, dt, d);
    Tensor xs = Tensor::empty({M, H}, dt, d), dx = Tensor::empty({M, H}, dt, d);
    Tensor w = randn({H}, DType::f32, d, 5), b = randn({H}, DType::f32, d, 6);
    Tensor dw = Tensor::zeros({H}, DType::f32, d), db = Tensor::zeros({H}, DType::f32, d);
    const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
    if (d == Device::cpu && dt != DType::f32) {
      w = cast(w, dt); b = cast(b, dt); dw = cast(dw, dt); db = cast(db, dt);
    }
    Tensor mean = Tensor::empty({M}, st, d), rstd = Tensor::empty({M}, st, d);
    add("layernorm_forward +res", {M, H}, 4 * es * M * H,
        [&] { layernorm_forward(out, mean, rstd, inp, res, w, b, 1e-12, xs); });
    add("layernorm_backward", {M, H}, 3 * es * M * H,
        [&] { layernorm_backward(dx, dw, db, inp, xs, mean, rstd, w); });
  }
  {
    const Shape s{8, 12, 512, 512};
    const double n = double(shape_numel(s));
    Tensor sc = randn(s, dt, d, 7), p = Tensor::empty(s, dt, d), ds = Tensor::empty(s, dt, d);
    std::vector<float> mk(8 * 512, 0.0f);
    for (int b = 0; b < 8; ++b)
      for (int k = 200 + 30 * b; k < 512; ++k) mk[size_t(b * 512 + k)] = -10000.0f;
    Tensor mask = Tensor::from_host(mk, {8, 512}, d);
    add("softmax_forward masked", s, 2 * es * n, [&] { softmax_forward(p, sc, mask, 0.125f); });
    add("softmax_backward", s, 3 * es * n, [&] { softmax_backward(ds, sc, p, 0.125f); });
    Tensor pv = p.view({8, 12 * 512 * 512}), out = Tensor::empty({8, 12 * 512 * 512}, dt, d);
    Tensor ex = Tensor::from_host(std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}, {8}, d);
    add("dropout_forward p=0.1", s, 2 * es * n, [&] { dropout_forward(out, pv, 0.1f, DropoutKey{1, 2, 3}, ex); });
  }
  {
    Tensor x = randn({M, H}, dt, d, 8), out = Tensor::empty({M, H}, dt, d);
    Tensor ex = ids_for(M, 1 << 30, d, 9);
    add("dropout_forward p=0.1", {M, H}, 2 * es * M * H,
        [&] { dropout_forward(out, x, 0.1f, DropoutKey{1, 2, 3}, ex); });
  }
  {
    const DType tdt = d == Device::cpu ? dt : DType::f32;
    Tensor table = randn({V, H}, tdt, d, 10), out = Tensor::empty({M, H}, dt, d);
    Tensor ids = ids_for(M, V, d, 11), g = randn({M, H}, dt, d, 12);
    Tensor dtable = Tensor::zeros({V, H}, tdt, d);
    add("embedding_forward", {M, H}, 2 * es * M * H, [&] { embedding_forward(out, ids, table, false); });
    add("embedding_backward (75% PAD)", {M, H}, 3 * es * M * H,
        [&] { embedding_backward(dtable, g, ids); });
  }
  {
    Tensor z = randn({32, 2}, dt, d, 13), dz = Tensor::empty({32, 2}, dt, d);
    Tensor y = Tensor::from_host(std::vector<int32_t>(32, 1), {32}, d);
    Tensor loss = Tensor::empty({1}, dt == DType::f64 ? DType::f64 : DType::f32, d);
    add("cross_entropy fwd+bwd", {32, 2}, 3 * es * 64, [&] {
      cross_entropy_forward(loss, z, y);
      cross_entropy_backward(dz, z, y, 1.0f);
    });
  }
  for (const Row& r : rows) {
    const double gbs = r.bytes / r.seconds / 1e9;
    std::printf("%-5s %-5s %-30s %-18s %10.3f %9.2f %8.2f\n", std::string(device_name(d)).c_str(),
                std::string(dtype_name(dt)).c_str(), r.op.c_str(), r.shape.c_str(), 1e3 * r.seconds,
                gbs, gbs / copy_gbs);
  }
}

// kernels/fused.h against the unfused sequences at MiniLM's shapes (B·S = 16·128 rows, F = 1536,
// H = 384): fused and unfused alternate `rounds` times (a noisy machine drifts), medians of the
// rounds' medians; bytes are those of the fused pass (inputs + outputs once).
void run_fused(Device d, DType dt, int reps, int rounds) {
  const int64_t M = 16 * 128, F = 1536, H = 384;
  const double es = double(dtype_size(dt));
  Tensor big = randn({M, F}, dt, d, 1), big2 = Tensor::empty({M, F}, dt, d);
  const double copy_gbs = 2.0 * double(big.nbytes()) / median_seconds(d, reps, [&] { big2.copy_from(big); }) / 1e9;
  Tensor x = randn({16, 128, F}, dt, d, 2), g = randn({16, 128, F}, dt, d, 3), bF = randn({F}, dt, d, 4);
  Tensor pre = Tensor::empty({16, 128, F}, dt, d), y = Tensor::empty({16, 128, F}, dt, d);
  Tensor dx = Tensor::empty({16, 128, F}, dt, d), dbF = Tensor::zeros({F}, dt, d);
  Tensor h = randn({16, 128, H}, dt, d, 5), res = randn({16, 128, H}, dt, d, 6), bH = randn({H}, dt, d, 7);
  Tensor w = randn({H}, dt, d, 8), lb = randn({H}, dt, d, 9), dbH = Tensor::zeros({H}, dt, d);
  Tensor t = Tensor::empty({16, 128, H}, dt, d), t2 = Tensor::empty({16, 128, H}, dt, d);
  Tensor out = Tensor::empty({16, 128, H}, dt, d), xs = Tensor::empty({16, 128, H}, dt, d);
  Tensor gh = randn({16, 128, H}, dt, d, 10), dh = Tensor::empty({16, 128, H}, dt, d);
  const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
  Tensor mean = Tensor::empty({M}, st, d), rstd = Tensor::empty({M}, st, d);
  Tensor ids = ids_for(16, 1 << 30, d, 11);
  const DropoutKey key{1, 2, 3};
  struct Pair {
    std::string op, shape;
    double bytes;
    std::function<void()> fused, unfused;
  };
  const std::vector<Pair> pairs = {
      {"bias_gelu_forward", shape_str({M, F}), 3 * es * M * F, [&] { bias_gelu_forward(pre, y, x, bF); },
       [&] { bias_add_forward(pre, x, bF); gelu_forward(y, pre); }},
      {"bias_gelu_backward", shape_str({M, F}), 3 * es * M * F, [&] { bias_gelu_backward(dx, dbF, g, pre); },
       [&] { gelu_backward(dx, g, pre); bias_add_backward(dbF, dx); }},
      {"bias_dropout_residual_layernorm", shape_str({M, H}), 4 * es * M * H,
       [&] { bias_dropout_residual_layernorm_forward(out, mean, rstd, xs, h, bH, 0.1f, key, ids, res, w, lb, 1e-12); },
       [&] {
         bias_add_forward(t, h, bH);
         dropout_forward(t2, t, 0.1f, key, ids);
         layernorm_forward(out, mean, rstd, t2, res, w, lb, 1e-12, xs);
       }},
      {"dropout_bias_backward", shape_str({M, H}), 2 * es * M * H,
       [&] { dropout_bias_backward(dh, dbH, gh, 0.1f, key, ids); },
       [&] { dropout_backward(dh, gh, 0.1f, key, ids); bias_add_backward(dbH, dh); }},
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  for (const Pair& pr : pairs) {
    std::vector<double> f, u;
    for (int r = 0; r < rounds; ++r) {
      f.push_back(median_seconds(d, reps, pr.fused));
      u.push_back(median_seconds(d, reps, pr.unfused));
    }
    const double fs = median(f), us = median(u), gbs = pr.bytes / fs / 1e9;
    std::printf("%-5s %-5s %-32s %-12s %9.3f %9.3f %7.2fx %8.2f %8.2f\n",
                std::string(device_name(d)).c_str(), std::string(dtype_name(dt)).c_str(),
                pr.op.c_str(), pr.shape.c_str(), 1e3 * fs, 1e3 * us, us / fs, gbs, gbs / copy_gbs);
  }
}

}  // namespace

int main() {
  std::printf("%-5s %-5s %-30s %-18s %10s %9s %8s\n", "dev", "dtype", "op", "shape", "ms", "GB/s",
              "of copy");
  run(Device::cpu, DType::f32, 5);
  std::printf("\n%-5s %-5s %-32s %-12s %9s %9s %8s %8s %8s\n", "dev", "dtype", "fused op", "shape",
              "fused ms", "unfused", "speedup", "GB/s", "of copy");
  run_fused(Device::cpu, DType::f32, 7, 5);
  if (!cuda_available()) {
    std::printf("cuda: skipped (no CUDA device)\n");
    return 0;
  }
  run(Device::cuda, DType::f32, 20);
  run(Device::cuda, DType::bf16, 20);
  run_fused(Device::cuda, DType::f32, 20, 3);
  run_fused(Device::cuda, DType::bf16, 20, 3);
  return 0;
}
