// Data order against PyTorch: golden permutations written by tools/make_train_golden.py.
#include <catch2/catch.hpp>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/sampler.h"

using namespace br;

namespace {
nlohmann::json golden() {
  std::ifstream in(std::string(BERTRAZOR_SOURCE_DIR) + "/tests/data/randperm_golden.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}
}  // namespace

TEST_CASE("torch_randperm matches torch.randperm with a seeded generator", "[train][sampler]") {
  auto g = golden();
  REQUIRE(g["randperm"].size() > 50);
  for (const auto& c : g["randperm"]) {
    uint64_t seed = c["seed"].get<uint64_t>();
    int64_t n = c["n"].get<int64_t>();
    INFO("seed " << seed << " n " << n);
    CHECK(torch_randperm(n, seed) == c["perm"].get<std::vector<int64_t>>());
  }
}

TEST_CASE("random_sampler_order: one generator across epochs", "[train][sampler]") {
  auto g = golden();
  for (const auto& c : g["random_sampler"]) {
    uint64_t seed = c["seed"].get<uint64_t>();
    int64_t n = c["n"].get<int64_t>();
    const auto& epochs = c["epochs"];
    for (size_t e = 0; e < epochs.size(); ++e) {
      INFO("seed " << seed << " n " << n << " epoch " << e);
      CHECK(random_sampler_order(n, seed, int64_t(e)) == epochs[e].get<std::vector<int64_t>>());
      CHECK(epoch_order(n, seed, int64_t(e)) == epochs[e].get<std::vector<int64_t>>());
    }
    if (epochs.size() > 1) CHECK(epochs[0] != epochs[1]);
  }
}

TEST_CASE("distributed_sampler_order matches DistributedSampler", "[train][sampler]") {
  auto g = golden();
  REQUIRE(g["distributed_sampler"].size() > 20);
  for (const auto& c : g["distributed_sampler"]) {
    int64_t n = c["n"], w = c["world_size"], r = c["rank"], e = c["epoch"];
    uint64_t seed = c["seed"];
    INFO("n " << n << " world " << w << " rank " << r << " epoch " << e << " seed " << seed);
    CHECK(distributed_sampler_order(n, seed, e, w, r) == c["order"].get<std::vector<int64_t>>());
    CHECK(epoch_order(n, seed, e, w, r) == c["order"].get<std::vector<int64_t>>());
  }
}

TEST_CASE("distributed_sampler_order: padding, shard sizes and drop_last", "[train][sampler]") {
  // n=7 over 8 ranks: every rank gets one index, rank 7 repeats the permutation's head.
  std::vector<int64_t> perm = torch_randperm(7, 1 + 3);
  for (int64_t r = 0; r < 8; ++r) {
    auto o = distributed_sampler_order(7, 1, 3, 8, r);
    REQUIRE(o.size() == 1);
    CHECK(o[0] == perm[size_t(r % 7)]);
  }
  // n=10, W=4, drop_last: 2 per rank, the last two of the permutation unused.
  perm = torch_randperm(10, 5);
  std::vector<int64_t> seen;
  for (int64_t r = 0; r < 4; ++r) {
    auto o = distributed_sampler_order(10, 5, 0, 4, r, /*drop_last=*/true);
    REQUIRE(o.size() == 2);
    CHECK(o[0] == perm[size_t(r)]);
    CHECK(o[1] == perm[size_t(4 + r)]);
  }
  // RTE over 4 ranks (spec §2.9): 623 per rank, two padded.
  size_t total = 0;
  for (int64_t r = 0; r < 4; ++r) total += distributed_sampler_order(2490, 42, 0, 4, r).size();
  CHECK(total == 2492);
}

TEST_CASE("sampler: the seed uses its low 32 bits like torch", "[train][sampler]") {
  CHECK(torch_randperm(50, (uint64_t(1) << 32) + 9) == torch_randperm(50, 9));
  CHECK(torch_randperm(50, 9) != torch_randperm(50, 10));
  CHECK(torch_randperm(0, 1).empty());
  CHECK(torch_randperm(1, 1) == std::vector<int64_t>{0});
}

TEST_CASE("sampler: bad inputs throw with the function name", "[train][sampler]") {
  CHECK_THROWS_WITH(torch_randperm(-1, 0), Catch::Contains("torch_randperm") && Catch::Contains("-1"));
  CHECK_THROWS_WITH(distributed_sampler_order(10, 0, 0, 4, 4),
                    Catch::Contains("distributed_sampler_order") && Catch::Contains("rank 4"));
  CHECK_THROWS_WITH(epoch_order(10, 0, 0, 1, 1), Catch::Contains("epoch_order"));
  CHECK_THROWS_WITH(random_sampler_order(10, 0, -1), Catch::Contains("epoch must be >= 0"));
}
