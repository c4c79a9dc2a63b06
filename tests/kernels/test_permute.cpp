// split_heads / merge_heads: the index map against the definition in every dtype, round trips, bad
// input. Each as the other's backward (central differences) and CUDA bit-exact against the CPU:
// the "split_heads" and "merge_heads" op table entries.
#include <cstring>
#include <vector>

#include "harness.h"
#include "kernels/permute.h"

using namespace br;
using test::random_tensor;
using test::to_doubles;

namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(Device::cpu), y = b.to(Device::cpu);
  return x.nbytes() == y.nbytes() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

struct Dims {
  int64_t B, S, N, D;
};
const std::vector<Dims> kDims = {
    {2, 7, 3, 5}, {1, 1, 1, 1}, {1, 33, 4, 1}, {3, 1, 2, 16}, {2, 5, 12, 64}};

}  // namespace

TEST_CASE("split_heads and merge_heads follow the definition in every dtype", "[permute]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    for (const Dims& d : kDims) {
      INFO(dtype_name(dt) << " B=" << d.B << " S=" << d.S << " N=" << d.N << " D=" << d.D);
      Tensor x = random_tensor({d.B, d.S, d.N * d.D}, dt, rng);
      Tensor h = Tensor::empty({d.B, d.N, d.S, d.D}, dt);
      test::poison(h);
      split_heads(h, x, d.N);
      std::vector<double> xv = to_doubles(x), hv = to_doubles(h);
      for (int64_t b = 0; b < d.B; ++b)
        for (int64_t n = 0; n < d.N; ++n)
          for (int64_t s = 0; s < d.S; ++s)
            for (int64_t e = 0; e < d.D; ++e)
              REQUIRE(hv[size_t(((b * d.N + n) * d.S + s) * d.D + e)] ==
                      xv[size_t(((b * d.S + s) * d.N + n) * d.D + e)]);
      Tensor back = Tensor::empty(x.shape(), dt);
      test::poison(back);
      merge_heads(back, h);
      CHECK(same_bytes(back, x));
    }
  }
}

TEST_CASE("split_heads and merge_heads reject bad input naming the op and the shapes",
          "[permute]") {
  Tensor x = Tensor::zeros({2, 7, 15}, DType::f32);
  CHECK_THROWS_WITH(split_heads(Tensor::zeros({2, 4, 7, 4}, DType::f32), x, 4),
                    Catch::Contains("split_heads") && Catch::Contains("[2, 7, 15]") &&
                        Catch::Contains("heads=4"));
  CHECK_THROWS_WITH(
      split_heads(Tensor::zeros({2, 3, 5, 7}, DType::f32), x, 3),
      Catch::Contains("split_heads: out has shape [2, 3, 5, 7], expected [2, 3, 7, 5]"));
  CHECK_THROWS_WITH(split_heads(Tensor::zeros({2, 3, 7, 5}, DType::f64), x, 3),
                    Catch::Contains("split_heads"));
  CHECK_THROWS_WITH(split_heads(Tensor::zeros({2, 3, 7, 5}, DType::f32), x, 0),
                    Catch::Contains("heads=0"));
  CHECK_THROWS_WITH(split_heads(Tensor::zeros({2, 7, 15}, DType::f32),
                                Tensor::zeros({2, 7, 3, 5}, DType::f32), 3),
                    Catch::Contains("split_heads: in f32[2, 7, 3, 5]"));
  CHECK_THROWS_WITH(
      merge_heads(Tensor::zeros({2, 7, 16}, DType::f32), Tensor::zeros({2, 3, 7, 5}, DType::f32)),
      Catch::Contains("merge_heads: out has shape [2, 7, 16], expected [2, 7, 15]"));
  CHECK_THROWS_WITH(merge_heads(x, x), Catch::Contains("merge_heads"));
  Tensor h = Tensor::zeros({2, 3, 7, 5}, DType::f32);
  CHECK_THROWS_WITH(merge_heads(h.view({2, 7, 15}), h),
                    Catch::Contains("merge_heads") && Catch::Contains("alias"));
}

TEST_CASE("split_heads rejects tensors on different devices", "[permute][cuda]") {
  if (test::skip_without_cuda()) return;
  Tensor x = Tensor::zeros({2, 7, 15}, DType::f32), h = Tensor::zeros({2, 3, 7, 5}, DType::f32);
  CHECK_THROWS_WITH(split_heads(h, x.to(Device::cuda), 3),
                    Catch::Contains("split_heads: tensors on different devices"));
}
