// zero_padding_rows: against a direct loop over [B, G, S, R], every dtype, masks with no, some and
// all positions padded; bad arguments. CUDA bit-identical to the CPU: the "zero_padding_rows" op
// table entry.
#include <catch2/catch.hpp>
#include <cstring>

#include "inputs.h"
#include "kernels/padding.h"

using namespace br;

namespace {

// What zero_padding_rows must give, element by element through doubles.
std::vector<double> expected(const Tensor& x, const Tensor& mask) {
  std::vector<double> v = test::to_doubles(x);
  const std::vector<int32_t> m = mask.to_vector<int32_t>();
  const int64_t B = x.size(0), S = x.size(x.dim() - 2), R = x.size(x.dim() - 1);
  const int64_t per_sample = x.numel() / B;
  for (int64_t i = 0; i < x.numel(); ++i)
    if (m[size_t((i / per_sample) * S + (i / R) % S)] == 0) v[size_t(i)] = 0.0;
  return v;
}

}  // namespace

TEST_CASE("zero_padding_rows zeroes exactly the padded rows of every group",
          "[kernels][padding]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& shape : std::vector<Shape>{{1, 1, 1}, {3, 5, 4}, {2, 3, 7, 5}, {4, 2, 9, 9}})
    for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
      INFO(shape_str(shape) << " " << dtype_name(dt));
      const int64_t B = shape[0], S = shape[shape.size() - 2];
      Tensor x = test::random_tensor(shape, dt, rng, Device::cpu, 0.5, 1.0);  // no zeros in x
      Tensor mask = test::random_token_mask(B, S, rng);
      std::vector<double> want = expected(x, mask);
      zero_padding_rows(x, mask);
      CHECK(test::to_doubles(x) == want);
    }
  // No padding: untouched, bit for bit.
  Tensor x = test::random_tensor({2, 3, 4}, DType::f32, rng);
  Tensor before = x.clone();
  zero_padding_rows(x, Tensor::from_host(std::vector<int32_t>(6, 1), {2, 3}));
  CHECK(std::memcmp(x.raw(), before.raw(), x.nbytes()) == 0);
}

TEST_CASE("zero_padding_rows rejects bad arguments naming them", "[kernels][padding]") {
  Tensor x = Tensor::zeros({2, 3, 4}, DType::f32);
  Tensor m = Tensor::from_host(std::vector<int32_t>(6, 1), {2, 3});
  CHECK_THROWS_WITH(zero_padding_rows(Tensor::zeros({2, 3}, DType::f32), m),
                    Catch::Contains("zero_padding_rows: x f32[2, 3]@cpu must be [B, ..., S, R]"));
  CHECK_THROWS_WITH(zero_padding_rows(Tensor::zeros({2, 3, 4}, DType::i32), m),
                    Catch::Contains("must be floating"));
  CHECK_THROWS_WITH(
      zero_padding_rows(Tensor::zeros({2, 4, 3}, DType::f32), m),
      Catch::Contains("zero_padding_rows: token_mask has shape [2, 3], expected [2, 4]"));
  CHECK_THROWS_WITH(zero_padding_rows(x, Tensor::zeros({2, 3}, DType::f32)),
                    Catch::Contains("token_mask"));
  CHECK_THROWS_WITH(zero_padding_rows(x, Tensor()), Catch::Contains("token_mask"));
}
