// Back Razor pack_topk / unpack throughput against the copy bandwidth measured on the same device.
// Traffic counted: pack reads x and writes mask + values; unpack reads mask + values and writes the
// dense tensor; copy reads and writes x. Times are medians after one warm-up.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "benchmarks/bench_common.h"
#include "core/allocator.h"
#include "core/device.h"
#include "core/tensor.h"
#include "kernels/cast.h"
#include "kernels/sparse_pack.h"

using namespace br;

namespace {

using bench::median_seconds;
Tensor random_input(const Shape& shape, Device d) {
  return bench::random_tensor(shape, DType::f32, d, 1234, true);
}

void run(Device d, const Shape& shape, double ratio, DType value_dtype, int reps) {
  Tensor x = random_input(shape, d);
  Tensor copy = Tensor::empty(shape, x.dtype(), d);
  const double copy_bytes = 2.0 * double(x.nbytes());
  const double copy_gbs = copy_bytes / median_seconds(d, reps, [&] { copy.copy_from(x); }) / 1e9;

  SparsePack p = pack_topk(x, ratio, value_dtype, MemCategory::workspace);
  const double pack_bytes = double(x.nbytes()) + double(p.bytes());
  const double pack_s = median_seconds(d, reps, [&] {
    SparsePack q = pack_topk(x, ratio, value_dtype, MemCategory::workspace);
  });
  Tensor out = Tensor::empty(shape, x.dtype(), d);
  const double unpack_s = median_seconds(d, reps, [&] { unpack(out, p); });
  const std::string name = fmt::format("{} {} {} p={}", device_name(d), shape_str(shape),
                                       dtype_name(value_dtype), ratio);
  std::printf("%-44s %-7s %10.3f %9.2f %8.2f\n", name.c_str(), "copy", 1e3 * copy_bytes / copy_gbs / 1e9,
              copy_gbs, 1.0);
  for (auto [op, s] : {std::pair<const char*, double>{"pack", pack_s}, {"unpack", unpack_s}}) {
    double gbs = pack_bytes / s / 1e9;
    std::printf("%-44s %-7s %10.3f %9.2f %8.2f\n", name.c_str(), op, 1e3 * s, gbs, gbs / copy_gbs);
  }
}

}  // namespace

int main() {
  retain_freed_host_memory();  // as the CLI does: pack's fresh buffers reuse freed pages
  // bert-base seq 512 batch 8 (hidden, probabilities); MiniLM seq 128 batch 16 (hidden, probabilities).
  const std::vector<Shape> shapes = {{8, 512 * 768}, {8, 12 * 512 * 512}, {16, 128 * 384},
                                     {16, 12 * 128 * 128}};
  std::printf("%-44s %-7s %10s %9s %8s\n", "case", "op", "ms", "GB/s", "of copy");
  for (Device d : {Device::cpu, Device::cuda}) {
    if (d == Device::cuda && !cuda_available()) {
      std::printf("cuda: skipped (no CUDA device)\n");
      continue;
    }
    const int reps = d == Device::cpu ? 5 : 20;
    for (const Shape& s : shapes) run(d, s, 0.8, DType::f16, reps);
  }
  return 0;
}
