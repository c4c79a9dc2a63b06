// tanh: forward against std::tanh, gradient by central differences (backward reads the forward
// output), in-place use, CUDA against the CPU reference, bad input.
#include <cmath>
#include <vector>

#include "harness.h"
#include "kernels/activation.h"

using namespace br;
using test::dot;
using test::random_tensor;
using test::rel_l2;
using test::to_doubles;
using test::to_f64_cpu;

TEST_CASE("tanh forward and gradient", "[tanh]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& s : {Shape{7, 33}, Shape{1}, Shape{2, 1, 127}}) {
    INFO("shape " << shape_str(s));
    Tensor x = random_tensor(s, DType::f64, rng, Device::cpu, -3.0, 3.0);
    Tensor G = random_tensor(s, DType::f64, rng);
    Tensor y = Tensor::empty(s, DType::f64);
    test::poison(y);
    tanh_forward(y, x);
    std::vector<double> xv = to_doubles(x), yv = to_doubles(y);
    for (size_t i = 0; i < xv.size(); ++i)
      REQUIRE(yv[i] == Approx(std::tanh(xv[i])).epsilon(1e-15));
    Tensor dx = Tensor::empty(s, DType::f64);
    test::poison(dx);
    tanh_backward(dx, G, y);
    auto loss = [&] {
      tanh_forward(y, x);
      return dot(G, y);
    };
    // h = 1e-5 balances truncation (h^2 tanh''') against the rounding of a loss summed over every
    // element.
    test::check_gradients("tanh", {x}, {dx}, loss, 1e-5);
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

TEST_CASE("tanh on CUDA matches the CPU reference in f32 and bf16", "[tanh][cuda]") {
  if (test::skip_without_cuda()) return;
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const Shape& s : {Shape{7, 33}, Shape{1}, Shape{32, 768}}) {
      INFO(dtype_name(dt) << " shape " << shape_str(s));
      Tensor x = random_tensor(s, dt, rng, Device::cuda, -3.0, 3.0),
             g = random_tensor(s, dt, rng, Device::cuda);
      Tensor y = Tensor::empty(s, dt, Device::cuda), dx = Tensor::empty(s, dt, Device::cuda);
      test::poison(y);
      test::poison(dx);
      tanh_forward(y, x);
      tanh_backward(dx, g, y);
      Tensor Y = Tensor::empty(s, DType::f64), DX = Tensor::empty(s, DType::f64);
      tanh_forward(Y, to_f64_cpu(x));
      // The backward reference reads the same (rounded) forward output the kernel read.
      tanh_backward(DX, to_f64_cpu(g), to_f64_cpu(y));
      CHECK(rel_l2(y, Y) <= test::tolerance(dt));
      CHECK(rel_l2(dx, DX) <= test::tolerance(dt));
    }
  }
}
