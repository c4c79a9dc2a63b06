// The contract of tests/data/golden_tiny.safetensors (written by tools/make_golden_bert.py, described
// in docs/GOLDEN.md) that the BERT tests rely on: every name present with the shape the config
// implies, the config readable as a BertConfig, and the loss head's numbers re-derived here from the
// stored logits and labels (loss, classifier-bias gradient), plus the seed-vs-dense structure.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "harness.h"
#include "models/config.h"
#include "models/safetensors.h"

using br::DType;
using br::SafetensorsFile;
using br::Shape;

namespace {

const std::string kGolden = std::string(BERTRAZOR_SOURCE_DIR) + "/tests/data/golden_tiny.safetensors";

// HF BertForSequenceClassification parameter names and shapes for a config.
std::vector<std::pair<std::string, Shape>> expected_params(const br::BertConfig& c) {
  const int64_t H = c.hidden_size, F = c.intermediate_size, C = c.num_labels();
  std::vector<std::pair<std::string, Shape>> p = {
      {"bert.embeddings.word_embeddings.weight", {c.vocab_size, H}},
      {"bert.embeddings.position_embeddings.weight", {c.max_position_embeddings, H}},
      {"bert.embeddings.token_type_embeddings.weight", {c.type_vocab_size, H}},
      {"bert.embeddings.LayerNorm.weight", {H}},
      {"bert.embeddings.LayerNorm.bias", {H}},
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string L = "bert.encoder.layer." + std::to_string(l) + ".";
    for (const char* m : {"attention.self.query", "attention.self.key", "attention.self.value",
                          "attention.output.dense"}) {
      p.push_back({L + m + ".weight", {H, H}});
      p.push_back({L + m + ".bias", {H}});
    }
    p.push_back({L + "attention.output.LayerNorm.weight", {H}});
    p.push_back({L + "attention.output.LayerNorm.bias", {H}});
    p.push_back({L + "intermediate.dense.weight", {F, H}});
    p.push_back({L + "intermediate.dense.bias", {F}});
    p.push_back({L + "output.dense.weight", {H, F}});
    p.push_back({L + "output.dense.bias", {H}});
    p.push_back({L + "output.LayerNorm.weight", {H}});
    p.push_back({L + "output.LayerNorm.bias", {H}});
  }
  p.push_back({"bert.pooler.dense.weight", {H, H}});
  p.push_back({"bert.pooler.dense.bias", {H}});
  p.push_back({"classifier.weight", {C, H}});
  p.push_back({"classifier.bias", {C}});
  return p;
}

std::vector<float> f32(const SafetensorsFile& f, const std::string& name) {
  return f.load_as(name, f.entry(name).shape, DType::f32).to_vector<float>();
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float v : a) m = std::max(m, std::fabs(double(v)));
  return m;
}

// Parameters whose gradient seed leaves exact: everything above the last layer's first LayerNorm.
bool exact_in_seed(const std::string& name, int64_t layers) {
  const std::string last = "bert.encoder.layer." + std::to_string(layers - 1) + ".";
  return name == "classifier.bias" || name.rfind("bert.pooler.", 0) == 0 ||
         name.rfind(last + "intermediate.", 0) == 0 || name.rfind(last + "output.", 0) == 0;
}

void check_variant(const SafetensorsFile& f, const std::string& prefix, int64_t B, int64_t S,
                   int64_t num_labels) {
  INFO("prefix '" << prefix << "'");
  REQUIRE(f.metadata().count(prefix + "config"));
  const auto cfg = br::BertConfig::from_json(nlohmann::json::parse(f.metadata().at(prefix + "config")),
                                             kGolden + ":" + prefix + "config");
  CHECK(cfg.num_labels() == num_labels);
  CHECK(cfg.hidden_dropout_prob == 0.0);
  CHECK(cfg.attention_probs_dropout_prob == 0.0);
  CHECK(cfg.pad_token_id == 0);

  for (const char* t : {"input_ids", "token_type_ids", "attention_mask"}) {
    CHECK(f.entry(prefix + t).dtype == "I32");
    CHECK(f.entry(prefix + t).shape == Shape{B, S});
  }
  CHECK(f.entry(prefix + "labels").dtype == (num_labels == 1 ? "F32" : "I32"));
  CHECK(f.entry(prefix + "labels").shape == Shape{B});

  // Exactly the HF parameter set, with a gradient of the same shape per mode.
  const auto params = expected_params(cfg);
  std::set<std::string> want;
  for (const auto& [name, shape] : params) {
    INFO(name);
    want.insert(prefix + "param." + name);
    REQUIRE(f.has(prefix + "param." + name));
    CHECK(f.entry(prefix + "param." + name).shape == shape);
    for (const char* mode : {"dense", "seed"}) {
      const std::string g = prefix + mode + ".grad." + name;
      REQUIRE(f.has(g));
      CHECK(f.entry(g).shape == shape);
      CHECK(f.entry(g).dtype == "F32");
    }
  }
  std::set<std::string> got;
  for (const auto& e : f.entries())
    if (e.name.rfind(prefix + "param.", 0) == 0) got.insert(e.name);
  CHECK(got == want);

  // Loss from the stored logits and labels, in double; dloss/dlogits summed over the batch is
  // the classifier-bias gradient (exact in both modes).
  const auto logits = f32(f, prefix + "dense.logits");
  REQUIRE(logits.size() == size_t(B * num_labels));
  const auto labels = f32(f, prefix + "labels");
  double loss = 0;
  std::vector<double> dbias(num_labels, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    const float* z = &logits[b * num_labels];
    if (num_labels == 1) {
      const double d = double(z[0]) - labels[b];
      loss += d * d / B;
      dbias[0] += 2 * d / B;
    } else {
      double mx = z[0];
      for (int64_t c = 1; c < num_labels; ++c) mx = std::max(mx, double(z[c]));
      double sum = 0;
      for (int64_t c = 0; c < num_labels; ++c) sum += std::exp(z[c] - mx);
      const int64_t y = int64_t(labels[b]);
      loss += (std::log(sum) + mx - z[y]) / B;
      for (int64_t c = 0; c < num_labels; ++c)
        dbias[c] += (std::exp(z[c] - mx) / sum - (c == y ? 1.0 : 0.0)) / B;
    }
  }
  CHECK(std::fabs(f32(f, prefix + "dense.loss")[0] - loss) < 1e-6 * std::max(1.0, loss));
  for (const char* mode : {"dense", "seed"}) {
    const auto g = f32(f, prefix + mode + ".grad.classifier.bias");
    for (int64_t c = 0; c < num_labels; ++c) CHECK(std::fabs(g[c] - dbias[c]) < 1e-6);
  }

  // Seed: exact forward, exact gradients above the last LN1, different ones below.
  CHECK(max_abs_diff(f32(f, prefix + "seed.logits"), logits) == 0.0);
  CHECK(f32(f, prefix + "seed.loss") == f32(f, prefix + "dense.loss"));
  for (const auto& [name, shape] : params) {
    INFO(name);
    const auto d = f32(f, prefix + "dense.grad." + name);
    const double diff = max_abs_diff(f32(f, prefix + "seed.grad." + name), d);
    if (exact_in_seed(name, cfg.num_hidden_layers))
      CHECK(diff == 0.0);
    else if (name.find("query.weight") != std::string::npos || name == "classifier.weight")
      CHECK(diff > 1e-2 * max_abs(d));
  }
  // The padding row of the word embeddings never gets a gradient (nn.Embedding padding_idx).
  const auto wg = f32(f, prefix + "dense.grad.bert.embeddings.word_embeddings.weight");
  CHECK(max_abs(std::vector<float>(wg.begin(), wg.begin() + cfg.hidden_size)) == 0.0);
}

}  // namespace

TEST_CASE("golden_tiny.safetensors: names, shapes, config, loss head, seed structure") {
  const auto f = SafetensorsFile::open(kGolden);
  CHECK(std::stod(f.metadata().at("mask_value")) == double(std::numeric_limits<float>::lowest()));
  CHECK(std::stod(f.metadata().at("prune_ratio")) == 0.8);
  check_variant(f, "", 3, 16, 2);
  check_variant(f, "reg.", 4, 13, 1);
}
