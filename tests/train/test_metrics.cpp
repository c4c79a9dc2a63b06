// GLUE metrics against sklearn/scipy values (tests/data/metrics_golden.json, written by
// tools/make_golden_tokenizer.py) and small hand-computed cases.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/metrics.h"

using namespace br;
using Ids = std::vector<int32_t>;

TEST_CASE("metrics: hand-computed values", "[train][metrics]") {
  Ids p{1, 0, 1, 1, 0, 1}, l{1, 0, 0, 1, 1, 1};
  CHECK(accuracy(p, l) == Approx(4.0 / 6).epsilon(1e-15));
  // TP 3, FP 1, FN 1: F1 = 6 / 8.
  CHECK(f1_binary(p, l) == 0.75);
  // TN 1: MCC = (3*1 - 1*1) / sqrt(4*4*2*2) = 2/8.
  CHECK(matthews_corrcoef(p, l) == Approx(0.25).epsilon(1e-15));
  CHECK(matthews_corrcoef({1, 1, 1}, {0, 1, 1}) == 0.0);  // constant prediction
  CHECK(f1_binary({0, 0}, {0, 0}) == 0.0);
  CHECK(pearson({1, 2, 3}, {2, 4, 6}) == Approx(1.0));
  CHECK(pearson({1, 2, 3}, {3, 2, 1}) == Approx(-1.0));
  CHECK(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  CHECK(average_ranks({10, 20, 10, 30, 20, 20}) == std::vector<double>{1.5, 4, 1.5, 6, 4, 4});
  CHECK(spearman({1, 2, 3, 4}, {10, 20, 30, 1000}) == Approx(1.0));
}

TEST_CASE("metrics: glue_metrics keys and combined_score", "[train][metrics]") {
  auto m = glue_metrics_ordered("mrpc", {1, 0, 1, 1}, {1, 0, 0, 1});
  REQUIRE(m.size() == 3);
  CHECK(m[0].first == "accuracy");
  CHECK(m[1].first == "f1");
  CHECK(m[2].first == "combined_score");
  CHECK(m[2].second == Approx((0.75 + 0.8) / 2).epsilon(1e-15));
  CHECK(glue_metrics("rte", {0, 1}, {0, 0}) == std::map<std::string, double>{{"accuracy", 0.5}});
  CHECK(glue_metrics("cola", {0, 1}, {0, 1}).count("matthews_correlation") == 1);
  auto s = glue_metrics("stsb", {0.1, 0.5, 0.2}, {1.0, 3.0, 2.0});
  CHECK(s.size() == 3);
  CHECK(s.at("combined_score") == Approx((s.at("pearson") + s.at("spearmanr")) / 2));
  CHECK_THROWS_WITH(glue_metrics("squad", {0}, {0}), Catch::Contains("unknown task 'squad'"));
  CHECK_THROWS_WITH(glue_metrics("rte", {0, 1}, {0}), Catch::Contains("2 predictions but 1 labels"));
  CHECK_THROWS_WITH(glue_metrics("rte", {0.5}, {0}), Catch::Contains("prediction [0] = 0.5 is not a class id"));
  CHECK_THROWS_WITH(accuracy({}, {}), Catch::Contains("accuracy: no predictions"));
  CHECK_THROWS_WITH(f1_binary({2}, {1}), Catch::Contains("expected binary"));
}

TEST_CASE("metrics match sklearn / scipy / numpy", "[train][metrics][golden]") {
  std::ifstream in(std::string(BERTRAZOR_SOURCE_DIR) + "/tests/data/metrics_golden.json");
  REQUIRE(in.good());
  auto g = nlohmann::json::parse(in);
  REQUIRE(g["glue"].size() > 40);
  for (const auto& c : g["glue"]) {
    std::string task = c["task"];
    auto p = c["predictions"].get<std::vector<double>>();
    auto l = c["labels"].get<std::vector<double>>();
    auto got = glue_metrics_ordered(task, p, l);
    INFO(task << " n=" << p.size());
    REQUIRE(got.size() == c["metrics"].size());
    for (const auto& [key, value] : got) {
      INFO(key);
      REQUIRE(c["metrics"].contains(key));
      double want = c["metrics"][key];
      CHECK(value == Approx(want).epsilon(1e-12).margin(1e-14));
    }
  }
  REQUIRE(g["file"].size() > 5);
  for (const auto& c : g["file"]) {
    bool reg = c["is_regression"];
    auto got = file_metrics(reg, c["predictions"].get<std::vector<double>>(), c["labels"].get<std::vector<double>>());
    std::string key = reg ? "mse" : "accuracy";
    INFO(key << " n=" << c["labels"].size());
    CHECK(got.at(key) == c["metrics"][key].get<double>());  // float32 arithmetic, bit for bit
  }
}
