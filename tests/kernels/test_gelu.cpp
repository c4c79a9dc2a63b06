// GELU (erf form): known values (from 0.5·x·erfc(−x/√2), Python math.erfc), f64 gradient check,
// bad inputs, CUDA against the CPU reference.
#include "kernels/gelu.h"
#include "pointwise_util.h"

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

TEST_CASE("gelu gradients match central differences in f64 on awkward sizes", "[kernels][gelu]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& s : {Shape{7, 33}, Shape{1}, Shape{3, 1, 5}}) {
    Tensor x = rand64(s, rng, -3, 3), g = rand64(s, rng);
    Tensor y = Tensor::empty(s, DType::f64), dx = poisoned(s, DType::f64);
    gelu_backward(dx, g, x);
    check_gradients("gelu " + shape_str(s), {x}, {dx}, [&] {
      gelu_forward(y, x);
      return dot(g, y);
    }, 1e-5, 1e-5);
  }
}

TEST_CASE("gelu f32 agrees with f64 and dinp may alias dout", "[kernels][gelu]") {
  std::mt19937_64 rng(fresh_seed());
  Tensor x64 = rand64({127}, rng, -4, 4), g64 = rand64({127}, rng);
  Tensor x = to_dtype_device(x64, DType::f32, Device::cpu), g = to_dtype_device(g64, DType::f32, Device::cpu);
  Tensor y = poisoned({127}, DType::f32), y64 = poisoned({127}, DType::f64);
  gelu_forward(y, x);
  gelu_forward(y64, to_f64_cpu(x));
  CHECK(rel_l2(y, y64) < 1e-6);
  Tensor d64 = poisoned({127}, DType::f64);
  gelu_backward(d64, to_f64_cpu(g), to_f64_cpu(x));
  gelu_backward(g, g, x);
  CHECK(rel_l2(g, d64) < 1e-6);
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

TEST_CASE("gelu on CUDA matches the CPU reference in f32 and bf16", "[kernels][gelu][cuda]") {
  if (skip_without_cuda()) return;
  std::mt19937_64 rng(fresh_seed());
  for (DType dt : {DType::f32, DType::bf16}) {
    const Shape s{33, 129};
    Tensor x = round_through(random_tensor(s, DType::f32, rng, Device::cpu, -4, 4), dt);
    Tensor g = round_through(random_tensor(s, DType::f32, rng), dt);
    Tensor y = Tensor::empty(s, DType::f32), dx = Tensor::empty(s, DType::f32);
    gelu_forward(y, x);
    gelu_backward(dx, g, x);
    Tensor xc = to_dtype_device(x, dt, Device::cuda), gc = to_dtype_device(g, dt, Device::cuda);
    Tensor yc = poisoned(s, dt, Device::cuda), dxc = poisoned(s, dt, Device::cuda);
    gelu_forward(yc, xc);
    gelu_backward(dxc, gc, xc);
    INFO(dtype_name(dt));
    CHECK(rel_l2(yc, y) < tolerance(dt));
    CHECK(rel_l2(dxc, dx) < tolerance(dt));
  }
}
