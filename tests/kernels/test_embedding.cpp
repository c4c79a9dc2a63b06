// Embedding lookup/scatter: exact gather, accumulate, out-of-range ids (CPU and CUDA), bad shapes.
// Gradients, CUDA against the CPU and the deterministic backward: the "embedding" op table entry.
#include "kernels/embedding.h"
#include "inputs.h"

using namespace br;
using namespace br::test;

TEST_CASE("embedding_forward gathers rows exactly and accumulates", "[kernels][embedding]") {
  std::mt19937_64 rng(fresh_seed());
  const int64_t V = 11, H = 33;
  Tensor table = random_tensor({V, H}, DType::f32, rng);
  const std::vector<int32_t> idv = {3, 0, 10, 3, 7, 3};
  Tensor ids = ids_tensor(idv, {2, 3});
  Tensor out = poisoned({2, 3, H}, DType::f32);
  embedding_forward(out, ids, table, false);
  auto t = table.to_vector<float>(), o = out.to_vector<float>();
  for (size_t m = 0; m < idv.size(); ++m)
    for (int64_t h = 0; h < H; ++h) REQUIRE(o[m * H + size_t(h)] == t[size_t(idv[m] * H + h)]);
  embedding_forward(out, ids, table, true);
  auto o2 = out.to_vector<float>();
  for (size_t i = 0; i < o.size(); ++i) REQUIRE(o2[i] == 2 * o[i]);
}

TEST_CASE("embedding rejects out-of-range ids before writing and names the id and V",
          "[kernels][embedding]") {
  Tensor table = Tensor::zeros({4, 3}, DType::f32), out = Tensor::zeros({3, 3}, DType::f32);
  REQUIRE_THROWS_WITH(embedding_forward(out, ids_tensor({1, 4, 0}, {3}), table, false),
                      Catch::Contains("embedding_forward: id 4 at position 1 is outside [0, V=4)"));
  REQUIRE_THROWS_WITH(embedding_forward(out, ids_tensor({1, 2, -1}, {3}), table, false),
                      Catch::Contains("embedding_forward: id -1 at position 2 is outside [0, V=4)"));
  Tensor dtable = Tensor::zeros({4, 3}, DType::f32), dout = Tensor::from_host(std::vector<float>(9, 1.0f), {3, 3});
  REQUIRE_THROWS_WITH(embedding_backward(dtable, dout, ids_tensor({0, 1, 9}, {3})),
                      Catch::Contains("embedding_backward: id 9 at position 2 is outside [0, V=4)"));
  for (float v : dtable.to_vector<float>()) CHECK(v == 0.0f);
}

TEST_CASE("embedding rejects bad shapes and dtypes", "[kernels][embedding]") {
  Tensor table = Tensor::zeros({4, 3}, DType::f32), ids = ids_tensor({0, 1}, {2});
  REQUIRE_THROWS_WITH(embedding_forward(Tensor::zeros({2, 4}, DType::f32), ids, table, false),
                      Catch::Contains("embedding_forward: out f32[2, 4]@cpu must hold ids [2] rows of H=3"));
  REQUIRE_THROWS_WITH(embedding_forward(Tensor::zeros({3, 3}, DType::f32), ids, table, false),
                      Catch::Contains("embedding_forward: out f32[3, 3]@cpu"));
  REQUIRE_THROWS_WITH(embedding_forward(Tensor::zeros({2, 3}, DType::f32), Tensor::zeros({2}, DType::i64), table,
                                        false),
                      Catch::Contains("embedding_forward: ids is i64[2]@cpu, expected i32"));
  REQUIRE_THROWS_WITH(embedding_forward(Tensor::zeros({2, 3}, DType::f64), ids, table, false),
                      Catch::Contains("embedding_forward: on the CPU out f64[2, 3]@cpu must have the dtype of table"));
  REQUIRE_THROWS_WITH(embedding_backward(Tensor::zeros({12}, DType::f32), Tensor::zeros({2, 3}, DType::f32), ids),
                      Catch::Contains("embedding_backward: dtable f32[12]@cpu must be [V,H]"));
}

TEST_CASE("embedding on CUDA rejects an out-of-range id and leaves dtable unchanged",
          "[kernels][embedding][cuda]") {
  if (skip_without_cuda()) return;
  std::mt19937_64 rng(fresh_seed());
  const int64_t V = 30522, H = 768, M = 4096;
  std::vector<int32_t> bad = random_ids(M, V, rng, 0.6);
  bad[77] = int32_t(V);
  Tensor idc = ids_tensor(bad, {M}, Device::cuda);
  Tensor table = random_tensor({V, H}, DType::f32, rng, Device::cuda);
  REQUIRE_THROWS_WITH(embedding_forward(Tensor::empty({M, H}, DType::f32, Device::cuda), idc, table, false),
                      Catch::Contains("embedding_forward: id 30522 at position 77 is outside [0, V=30522)"));
  Tensor dtable = random_tensor({V, H}, DType::f32, rng, Device::cuda);
  Tensor before = dtable.to(Device::cpu);
  REQUIRE_THROWS_WITH(embedding_backward(dtable, random_tensor({M, H}, DType::f32, rng, Device::cuda), idc),
                      Catch::Contains("embedding_backward: id 30522 at position 77"));
  CHECK(max_abs_diff(dtable, before) == 0);
}
