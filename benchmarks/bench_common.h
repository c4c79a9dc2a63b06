// What every kernel microbenchmark shares: a median timer and seeded random inputs.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "kernels/cast.h"

namespace br::bench {

// Median wall time of `reps` calls of f after one warm-up; on CUDA each call is synchronized.
inline double median_seconds(Device d, int reps, const std::function<void()>& f) {
  f();
  cuda_synchronize();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    if (d == Device::cuda) cuda_synchronize();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Standard normal (normal = true) or uniform in [-1, 1) values, drawn in f32 and cast to dtype.
inline Tensor random_tensor(const Shape& shape, DType dtype, Device d, uint32_t seed, bool normal) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = normal ? g(rng) : u(rng);
  return cast(Tensor::from_host(v, shape), dtype).to(d);
}

}  // namespace br::bench
