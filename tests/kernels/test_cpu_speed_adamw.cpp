// The CPU AdamW update runs as one threaded pass over all the tensors, whole vectors then a scalar
// tail. Its result must not depend on how the elements are split: the same data updated as one
// large tensor (vectors, threads) and as many 5-element tensors (tail only, one thread) agree
// bit for bit, for both variants, with and without decay, over several steps and thread counts.
#include <omp.h>

#include <cstring>
#include <vector>

#include "harness.h"
#include "kernels/adamw.h"

using namespace br;
using test::random_tensor;

namespace {

struct Groups {
  std::vector<Tensor> p, g, m, v;
  std::vector<bool> decay;
};

// The n elements of `full` ([n] f32) as tensors of `chunk` elements each (the last may be shorter).
std::vector<Tensor> split(const Tensor& full, int64_t chunk) {
  std::vector<float> host = full.to_vector<float>();
  std::vector<Tensor> out;
  for (int64_t a = 0; a < full.numel(); a += chunk) {
    const int64_t b = std::min(full.numel(), a + chunk);
    out.push_back(Tensor::from_host(std::vector<float>(host.begin() + a, host.begin() + b), {b - a}));
  }
  return out;
}

std::vector<float> concat(const std::vector<Tensor>& ts) {
  std::vector<float> out;
  for (const Tensor& t : ts) {
    std::vector<float> h = t.to_vector<float>();
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("cpu adamw_step: one large tensor and many small ones give the same bits", "[adamw][cpu_speed]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const int64_t n = (int64_t(1) << 19) + 37;  // above the threading threshold, not a lane multiple
  const Tensor p = random_tensor({n}, DType::f32, rng), m = random_tensor({n}, DType::f32, rng, Device::cpu, -0.1, 0.1);
  const Tensor v = random_tensor({n}, DType::f32, rng, Device::cpu, 0.0, 0.01);
  std::vector<Tensor> grads;
  for (int s = 0; s < 3; ++s) grads.push_back(random_tensor({n}, DType::f32, rng));
  const int threads_before = omp_get_max_threads();
  for (bool hf : {false, true})
    for (bool decay : {false, true})
      for (float beta1 : {0.9f, 0.3f}) {  // 1 − β1 below and above lerp's 0.5 switch
        INFO("hf " << hf << " decay " << decay << " beta1 " << beta1);
        const AdamWConfig cfg{1e-3f, beta1, 0.999f, 1e-8f, 0.01f, hf};
        std::vector<Tensor> small_p = split(p, 5), small_m = split(m, 5), small_v = split(v, 5);
        omp_set_num_threads(1);
        for (int s = 0; s < 3; ++s)
          adamw_step(small_p, split(grads[size_t(s)], 5), small_m, small_v,
                     std::vector<bool>(small_p.size(), decay), cfg, s + 1);
        for (int threads : {1, 2, 3}) {
          INFO("threads " << threads);
          omp_set_num_threads(threads);
          Tensor bp = p.clone(), bm = m.clone(), bv = v.clone();
          for (int s = 0; s < 3; ++s)
            adamw_step({bp}, {grads[size_t(s)]}, {bm}, {bv}, {decay}, cfg, s + 1);
          CHECK(same_bits(bp.to_vector<float>(), concat(small_p)));
          CHECK(same_bits(bm.to_vector<float>(), concat(small_m)));
          CHECK(same_bits(bv.to_vector<float>(), concat(small_v)));
        }
      }
  omp_set_num_threads(threads_before);
}
