// bias_add: forward against the definition, accumulation of dbias over calls, in place, bad input.
// Gradients and CUDA against the CPU (f32 or bf16 dbias): the "bias_add" op table entry.
#include <vector>

#include "harness.h"
#include "kernels/bias.h"

using namespace br;
using test::random_tensor;
using test::rel_l2;
using test::to_doubles;

TEST_CASE("bias_add forward matches the definition and backward accumulates", "[bias]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& s : {Shape{7, 5}, Shape{2, 3, 33}, Shape{1, 1}, Shape{1, 127}, Shape{300, 3}}) {
    INFO("shape " << shape_str(s));
    const int64_t N = s.back(), M = shape_numel(s) / N;
    Tensor x = random_tensor(s, DType::f64, rng), b = random_tensor({N}, DType::f64, rng);
    Tensor y = Tensor::empty(s, DType::f64);
    test::poison(y);
    bias_add_forward(y, x, b);
    std::vector<double> xv = to_doubles(x), bv = to_doubles(b), yv = to_doubles(y);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        REQUIRE(yv[size_t(m * N + n)] == xv[size_t(m * N + n)] + bv[size_t(n)]);

    // A second call adds the same sum again.
    Tensor db1 = Tensor::zeros({N}, DType::f64);
    bias_add_backward(db1, x);
    std::vector<double> once = to_doubles(db1);
    bias_add_backward(db1, x);
    std::vector<double> twice = to_doubles(db1);
    for (int64_t n = 0; n < N; ++n)
      CHECK(twice[size_t(n)] == Approx(2 * once[size_t(n)]).epsilon(1e-12));
  }
}

TEST_CASE("bias_add works in place and in f32", "[bias]") {
  std::mt19937_64 rng(3);
  Tensor x = random_tensor({9, 17}, DType::f32, rng), b = random_tensor({17}, DType::f32, rng);
  Tensor ref = Tensor::empty({9, 17}, DType::f32);
  bias_add_forward(ref, x, b);
  bias_add_forward(x, x, b);
  CHECK(rel_l2(x, ref) == 0.0);
}

TEST_CASE("bias_add rejects bad input naming the op and the shapes", "[bias]") {
  Tensor x = Tensor::zeros({7, 5}, DType::f32);
  CHECK_THROWS_WITH(
      bias_add_forward(x, x, Tensor::zeros({4}, DType::f32)),
      Catch::Contains("bias_add_forward") && Catch::Contains("[4]") && Catch::Contains("[7, 5]"));
  CHECK_THROWS_WITH(
      bias_add_forward(Tensor::zeros({7, 4}, DType::f32), x, Tensor::zeros({5}, DType::f32)),
      Catch::Contains("bias_add_forward: out has shape [7, 4], expected [7, 5]"));
  CHECK_THROWS_WITH(bias_add_forward(x, x, Tensor::zeros({5}, DType::f64)),
                    Catch::Contains("bias_add_forward: bias is f64[5]"));
  CHECK_THROWS_WITH(bias_add_forward(x, x, Tensor::zeros({1, 5}, DType::f32)),
                    Catch::Contains("bias_add_forward"));
  CHECK_THROWS_WITH(
      bias_add_backward(Tensor::zeros({4}, DType::f32), x),
      Catch::Contains("bias_add_backward") && Catch::Contains("[4]") && Catch::Contains("[7, 5]"));
  CHECK_THROWS_WITH(bias_add_backward(Tensor::zeros({5}, DType::f64), x),
                    Catch::Contains("bias_add_backward"));
}

TEST_CASE("bias_add rejects tensors on different devices", "[bias][cuda]") {
  if (test::skip_without_cuda()) return;
  Tensor x = Tensor::zeros({7, 5}, DType::f32);
  CHECK_THROWS_WITH(bias_add_forward(x, x.to(Device::cuda), Tensor::zeros({5}, DType::f32)),
                    Catch::Contains("bias_add_forward: tensors on different devices"));
}
