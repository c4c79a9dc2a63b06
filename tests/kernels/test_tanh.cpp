// tanh: forward against std::tanh, in-place use, bad input. Gradients (backward reads the forward
// output) and CUDA against the CPU: the "tanh" op table entry.
#include <cmath>
#include <vector>

#include "harness.h"
#include "kernels/activation.h"

using namespace br;
using test::random_tensor;
using test::rel_l2;
using test::to_doubles;

TEST_CASE("tanh_forward matches std::tanh", "[tanh]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& s : {Shape{7, 33}, Shape{1}, Shape{2, 1, 127}}) {
    INFO("shape " << shape_str(s));
    Tensor x = random_tensor(s, DType::f64, rng, Device::cpu, -3.0, 3.0);
    Tensor y = Tensor::empty(s, DType::f64);
    test::poison(y);
    tanh_forward(y, x);
    std::vector<double> xv = to_doubles(x), yv = to_doubles(y);
    for (size_t i = 0; i < xv.size(); ++i)
      REQUIRE(yv[i] == Approx(std::tanh(xv[i])).epsilon(1e-15));
  }
}

TEST_CASE("tanh runs in place forward and backward in f32", "[tanh]") {
  std::mt19937_64 rng(5);
  Tensor x = random_tensor({5, 9}, DType::f32, rng, Device::cpu, -2.0, 2.0);
  Tensor g = random_tensor({5, 9}, DType::f32, rng);
  Tensor y = Tensor::empty(x.shape(), DType::f32), dx = Tensor::empty(x.shape(), DType::f32);
  tanh_forward(y, x);
  tanh_backward(dx, g, y);
  tanh_forward(x, x);
  CHECK(rel_l2(x, y) == 0.0);
  tanh_backward(g, g, x);
  CHECK(rel_l2(g, dx) == 0.0);
}

TEST_CASE("tanh rejects bad input naming the op and the shapes", "[tanh]") {
  Tensor x = Tensor::zeros({7, 5}, DType::f32);
  CHECK_THROWS_WITH(tanh_forward(Tensor::zeros({7, 4}, DType::f32), x),
                    Catch::Contains("tanh_forward: inp has shape [7, 5], expected [7, 4]"));
  CHECK_THROWS_WITH(tanh_forward(x, Tensor::zeros({7, 5}, DType::f64)),
                    Catch::Contains("tanh_forward: inp is f64[7, 5]"));
  CHECK_THROWS_WITH(tanh_backward(x, x, Tensor::zeros({5, 7}, DType::f32)),
                    Catch::Contains("tanh_backward: out has shape [5, 7]"));
  CHECK_THROWS_WITH(tanh_forward(Tensor::zeros({2}, DType::bf16), Tensor::zeros({2}, DType::bf16)),
                    Catch::Contains("tanh_forward: CPU supports f32 and f64"));
}

TEST_CASE("tanh rejects tensors on different devices", "[tanh][cuda]") {
  if (test::skip_without_cuda()) return;
  Tensor x = Tensor::zeros({7, 5}, DType::f32);
  CHECK_THROWS_WITH(tanh_forward(x, x.to(Device::cuda)),
                    Catch::Contains("tanh_forward: tensors on different devices"));
}
