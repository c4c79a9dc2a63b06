// GELU (erf form): known values (from 0.5·x·erfc(−x/√2), Python math.erfc), aliasing, bad inputs.
// Gradients, f32 against f64 and CUDA against the CPU: the "gelu" op table entry.
#include "kernels/gelu.h"
#include "inputs.h"

using namespace br;
using namespace br::test;

TEST_CASE("gelu_forward matches the erf formula at known points", "[kernels][gelu]") {
  Tensor x = Tensor::from_host(std::vector<double>{0.0, 1.0, -1.0, 3.0, -6.0}, {5});
  Tensor y = poisoned({5}, DType::f64);
  gelu_forward(y, x);
  const std::vector<double> want = {0.0, 0.8413447460685429, -0.15865525393145707,
                                    2.99595030590511, -5.919525870226207e-09};
  const std::vector<double> got = y.to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-12).margin(1e-15));
}

TEST_CASE("gelu_backward: dinp may alias dout", "[kernels][gelu]") {
  std::mt19937_64 rng(fresh_seed());
  Tensor x = random_tensor({127}, DType::f32, rng, Device::cpu, -4, 4);
  Tensor g = random_tensor({127}, DType::f32, rng), d = poisoned({127}, DType::f32);
  gelu_backward(d, g, x);
  gelu_backward(g, g, x);
  CHECK(max_abs_diff(g, d) == 0);
}

TEST_CASE("gelu rejects mismatched shapes and dtypes", "[kernels][gelu]") {
  Tensor x = Tensor::zeros({4, 3}, DType::f32), y = Tensor::zeros({4, 4}, DType::f32);
  REQUIRE_THROWS_WITH(gelu_forward(y, x), Catch::Contains("gelu_forward") && Catch::Contains("[4, 4]") &&
                                              Catch::Contains("[4, 3]"));
  REQUIRE_THROWS_WITH(gelu_backward(Tensor::zeros({4, 3}, DType::f64), x, x),
                      Catch::Contains("gelu_backward") && Catch::Contains("dinp"));
  Tensor i = Tensor::zeros({4, 3}, DType::i32);
  REQUIRE_THROWS_WITH(gelu_forward(i, i), Catch::Contains("gelu_forward") && Catch::Contains("i32"));
  REQUIRE_THROWS_WITH(gelu_forward(y, Tensor()), Catch::Contains("gelu_forward: inp is undefined"));
}
