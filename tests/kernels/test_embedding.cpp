// Embedding lookup/scatter: exact gather, accumulate, f64 gradient check with repeated ids,
// out-of-range ids, bad shapes, CUDA against the CPU (deterministic backward with hot rows).
#include "kernels/embedding.h"
#include "pointwise_util.h"

using namespace br;
using namespace br::test;

namespace {

std::vector<int32_t> random_ids(int64_t M, int64_t V, std::mt19937_64& rng, double pad_fraction = 0.0) {
  std::vector<int32_t> v(static_cast<size_t>(M));
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& x : v) x = u(rng) < pad_fraction ? 0 : int32_t(rng() % uint64_t(V));
  return v;
}

}  // namespace

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

TEST_CASE("embedding gradient matches central differences in f64 with repeated ids", "[kernels][embedding]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const int64_t V = 5, H = 7, M = 13;
  Tensor table = rand64({V, H}, rng), g = rand64({M, H}, rng);
  Tensor ids = ids_tensor(random_ids(M, V, rng, 0.4), {M});
  Tensor out = Tensor::empty({M, H}, DType::f64), dtable = Tensor::zeros({V, H}, DType::f64);
  embedding_backward(dtable, g, ids);
  check_gradients("embedding", {table}, {dtable}, [&] {
    embedding_forward(out, ids, table, false);
    return dot(g, out);
  }, 1e-5, 1e-6);
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

TEST_CASE("embedding on CUDA matches the CPU and its backward is deterministic with hot rows",
          "[kernels][embedding][cuda]") {
  if (skip_without_cuda()) return;
  std::mt19937_64 rng(fresh_seed());
  const int64_t V = 30522, H = 768, M = 4096;
  Tensor table = random_tensor({V, H}, DType::f32, rng);
  std::vector<int32_t> idv = random_ids(M, V, rng, 0.6);  // [PAD]-heavy, like padded GLUE batches
  idv[5] = int32_t(V - 1);
  Tensor ids = ids_tensor(idv, {8, 512});
  Tensor out = Tensor::empty({8, 512, H}, DType::f32);
  embedding_forward(out, ids, table, false);
  Tensor idc = ids.to(Device::cuda);
  for (DType ot : {DType::f32, DType::bf16}) {
    for (DType tt : {DType::f32, DType::bf16}) {
      INFO("out " << dtype_name(ot) << " table " << dtype_name(tt));
      Tensor tr = round_through(table, tt);
      Tensor ref = Tensor::empty({8, 512, H}, DType::f32);
      embedding_forward(ref, ids, tr, false);
      Tensor oc = poisoned({8, 512, H}, ot, Device::cuda);
      embedding_forward(oc, idc, to_dtype_device(tr, tt, Device::cuda), false);
      CHECK(rel_l2(oc, ref) < tolerance(ot));
    }
  }
  Tensor g = random_tensor({M, H}, DType::f32, rng);
  Tensor dref = random_tensor({V, H}, DType::f32, rng);
  Tensor d1 = dref.to(Device::cuda), d2 = dref.to(Device::cuda);
  embedding_backward(dref, g, ids);
  Tensor gc = g.to(Device::cuda);
  embedding_backward(d1, gc, idc);
  embedding_backward(d2, gc, idc);
  CHECK(rel_l2(d1, dref) < 1e-5);
  CHECK(max_abs_diff(d1, d2) == 0);
  Tensor d3 = Tensor::zeros({V, H}, DType::f32, Device::cuda), dz = Tensor::zeros({V, H}, DType::f32);
  embedding_backward(d3, to_dtype_device(g, DType::bf16, Device::cuda), idc);
  embedding_backward(dz, round_through(g, DType::bf16), ids);
  CHECK(rel_l2(d3, dz) < 1e-5);
  std::vector<int32_t> bad = idv;
  bad[77] = int32_t(V);
  REQUIRE_THROWS_WITH(embedding_forward(Tensor::empty({M, H}, DType::f32, Device::cuda), ids_tensor(bad, {M}, Device::cuda),
                                        table.to(Device::cuda), false),
                      Catch::Contains("embedding_forward: id 30522 at position 77 is outside [0, V=30522)"));
  Tensor before = d1.to(Device::cpu);
  REQUIRE_THROWS_WITH(embedding_backward(d1, gc, ids_tensor(bad, {M}, Device::cuda)),
                      Catch::Contains("embedding_backward: id 30522 at position 77"));
  CHECK(max_abs_diff(d1, before) == 0);
}
