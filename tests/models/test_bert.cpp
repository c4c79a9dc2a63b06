#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "harness.h"
#include "kernels/cast.h"
#include "models/bert.h"

using namespace br;

namespace {

BertConfig tiny_config(int num_labels = 3) {
  BertConfig c;
  c.vocab_size = 13;
  c.hidden_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 7;
  c.max_position_embeddings = 9;
  c.type_vocab_size = 2;
  c.hidden_dropout_prob = 0.1;
  c.attention_probs_dropout_prob = 0.1;
  c.layer_norm_eps = 1e-12;
  c.initializer_range = 0.5;  // large, so the tiny model is far from linear
  c.pad_token_id = 0;
  c.set_num_labels(num_labels);
  return c;
}

BertBatch tiny_batch(Device d, int num_labels) {
  // B=3, S=5; the last sample is padded after two tokens.
  std::vector<int32_t> ids = {2, 5, 7, 11, 3, 2, 9, 4, 6, 3, 2, 3, 0, 0, 0};
  std::vector<int32_t> tt = {0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0};
  std::vector<int32_t> am = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
  BertBatch b;
  b.input_ids = Tensor::from_host(ids, {3, 5}, d);
  b.token_type_ids = Tensor::from_host(tt, {3, 5}, d);
  b.attention_mask = Tensor::from_host(am, {3, 5}, d);
  b.example_ids = Tensor::from_host(std::vector<int32_t>{17, 4, 230}, {3}, d);
  if (num_labels == 1)
    b.labels = Tensor::from_host(std::vector<float>{0.5f, -1.0f, 2.0f}, {3}, d);
  else
    b.labels = Tensor::from_host(std::vector<int32_t>{0, 2, 1}, {3}, d);
  return b;
}

// Perturb LayerNorm weights and biases away from 1/0 so their gradients are exercised.
void perturb(BertForSequenceClassification& m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (auto& [name, t] : m.params().named()) {
    if (name.find("LayerNorm") == std::string::npos && name.find(".bias") == std::string::npos)
      continue;
    Tensor r = test::random_tensor(t.shape(), t.dtype(), rng, Device::cpu, -0.5, 0.5);
    std::vector<double> a = test::to_doubles(t), b = test::to_doubles(r);
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
    Tensor s = Tensor::from_host(a, t.shape());
    cast(t, s);
  }
}

double loss_value(BertForSequenceClassification& m, const BertBatch& b, const StepOptions& opt) {
  Tape tape(Device::cpu);
  ForwardResult fwd = m.forward(b, opt, &tape);
  Tensor logits = fwd.logits;
  return test::to_doubles(m.loss(logits, b.labels))[0];
}

// One training step under the model's current plans: logits, the flat gradient, the tape bytes
// held after forward, and what backward reported.
struct StepOut {
  std::vector<float> logits, grads;
  int64_t saved = 0;
  BackwardReport report;
};

StepOut plan_step(BertForSequenceClassification& m, const BertBatch& b, const StepOptions& opt) {
  Tape tape(Device::cpu);
  ForwardResult fwd = m.forward(b, opt, &tape);
  StepOut r;
  r.logits = fwd.logits.to_vector<float>();
  r.saved = tape.bytes();
  m.grads().zero_();
  r.report = m.backward(b, opt, tape, fwd.record, m.loss_backward(fwd.logits, b.labels, 1.0f));
  CHECK(tape.bytes() == 0);
  r.grads = m.grads_flat().to_vector<float>();
  return r;
}

// One training step's gradient (the whole flat buffer) under policy p.
std::vector<float> step_grads(BertForSequenceClassification& m, const BertBatch& b,
                              const StepOptions& opt, const BackRazorPolicy& p) {
  m.policy() = p;
  return plan_step(m, b, opt).grads;
}

}  // namespace

TEST_CASE("BERT backward matches central differences in double (dropout on)", "[models][bert][grad]") {
  // The second pass recomputes the FFN2 input from the (dense) GELU input instead of saving it.
  for (int num_labels : {3, 1, -1}) {
    INFO("num_labels " << num_labels);
    BertForSequenceClassification m(tiny_config(std::abs(num_labels)), Device::cpu, DType::f64);
    if (num_labels < 0) m.policy().apply_overrides("ffn2_input=recompute");
    num_labels = std::abs(num_labels);
    m.init_weights(7);
    perturb(m, 11);
    BertBatch b = tiny_batch(Device::cpu, num_labels);
    StepOptions opt{true, 1234, 3, true};
    Tape tape(Device::cpu);
    ForwardResult fwd = m.forward(b, opt, &tape);
    Tensor logits = fwd.logits;
    m.grads().zero_();
    m.backward(b, opt, tape, fwd.record, m.loss_backward(logits, b.labels, 1.0f));
    CHECK(tape.bytes() == 0);
    std::vector<Tensor> params, grads;
    for (auto& [n, t] : m.params().named()) params.push_back(t);
    for (auto& [n, t] : m.grads().named()) grads.push_back(t);
    test::check_gradients("bert", params, grads, [&] { return loss_value(m, b, opt); }, 1e-6, 1e-5, 1e-4);
  }
}

TEST_CASE("Back Razor leaves the forward exact: logits bit-identical for every preset",
          "[models][bert][backrazor]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(3);
  BertBatch b = tiny_batch(Device::cpu, 3);
  StepOptions opt{true, 99, 0, true};
  Tape t0(Device::cpu);
  std::vector<float> dense = m.forward(b, opt, &t0).logits.to_vector<float>();
  for (const char* preset : {"seed", "all", "balanced"}) {
    m.policy() = BackRazorPolicy::preset(preset, 0.8, DType::f16);
    Tape t(Device::cpu);
    std::vector<float> got = m.forward(b, opt, &t).logits.to_vector<float>();
    CHECK(got == dense);
    CHECK(t.bytes() < t0.bytes());
  }
}

TEST_CASE("the last layer's feed-forward block runs on the [CLS] rows: same logits, sites [B,1,W]",
          "[models][bert]") {
  // Dropout on: the [CLS] rows' masks are the whole layer's. The whole last layer runs where a
  // sparse site there ranks every row (skip_padding off); everywhere else the [CLS] rows only.
  for (DType dt : {DType::f32, DType::f64}) {
    BertConfig c = tiny_config();
    c.num_hidden_layers = 3;
    BertForSequenceClassification m(c, Device::cpu, dt);
    m.init_weights(5);
    perturb(m, 6);
    BertBatch b = tiny_batch(Device::cpu, 3);
    const StepOptions opt{true, 1, 0, true};
    const double tol = dt == DType::f64 ? 1e-13 : 2e-6;
    auto close = [&](const std::vector<double>& x, const std::vector<double>& y) {
      REQUIRE(x.size() == y.size());
      for (size_t i = 0; i < x.size(); ++i) CHECK(std::abs(x[i] - y[i]) <= tol);
    };
    // the shape the tape holds for the last layer's FFN1 input, and the logits
    auto run = [&](const BackRazorPolicy& p, Shape* ffn1) {
      m.policy() = p;
      Tape tape(Device::cpu);
      ForwardResult f = m.forward(b, opt, &tape);
      for (const SiteRecord& r : tape.records())
        if (r.key.layer == 2 && r.key.site == Site::ffn1_input) *ffn1 = r.shape;
      CHECK(f.record.layers.back().first_token == (ffn1->at(1) == 1));
      return test::to_doubles(f.logits);
    };
    Shape dense_shape, ranked_shape, skipped_shape;
    const std::vector<double> dense = run(BackRazorPolicy::preset("none"), &dense_shape);
    BackRazorPolicy all = BackRazorPolicy::preset("all", 0.5, DType::f32);
    all.skip_padding = false;
    const std::vector<double> whole = run(all, &ranked_shape);
    all.skip_padding = true;
    const std::vector<double> skipped = run(all, &skipped_shape);
    CHECK(dense_shape == Shape{3, 1, c.hidden_size});
    CHECK(ranked_shape == Shape{3, 5, c.hidden_size});
    CHECK(skipped_shape == Shape{3, 1, c.hidden_size});
    close(dense, whole);
    CHECK(dense == skipped);  // Back Razor leaves the forward exact
    // evaluation (no tape, no dropout) against the whole layer without dropout
    m.policy() = BackRazorPolicy::preset("none");
    const std::vector<double> eval = test::to_doubles(m.forward(b, StepOptions{}, nullptr).logits);
    m.policy() = all;
    m.policy().skip_padding = false;
    Tape tape(Device::cpu);
    StepOptions no_dropout = opt;
    no_dropout.train = false;  // dropout off, still saving to a tape: the whole last layer
    ForwardResult f = m.forward(b, no_dropout, &tape);
    CHECK_FALSE(f.record.layers.back().first_token);
    close(eval, test::to_doubles(f.logits));
  }
}

TEST_CASE("the last layer's attention in training runs for the [CLS] queries: same gradients",
          "[models][bert]") {
  // Dropout on: the first query row of the attention kernel draws the whole layer's row-0 mask.
  // Against the whole attention: a sparse q that keeps every value and ranks every row
  // (skip_padding off) runs the last layer's attention whole, exactly.
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    BertConfig c = tiny_config();
    c.num_hidden_layers = 3;
    BertForSequenceClassification m(c, Device::cpu, dt);
    m.init_weights(8);
    perturb(m, 9);
    BertBatch b = tiny_batch(Device::cpu, 3);
    const StepOptions opt{true, 4, 2, true};
    auto run = [&](const BackRazorPolicy& p, bool queries, const Shape& probs_shape) {
      m.policy() = p;
      Tape tape(Device::cpu);
      ForwardResult f = m.forward(b, opt, &tape);
      CHECK(f.record.layers.back().first_token);
      CHECK(f.record.layers.back().first_token_queries == queries);
      for (const SiteRecord& r : tape.records())
        if (r.key == TapeKey{2, Site::probs}) CHECK(r.shape == probs_shape);
      const std::vector<double> logits = test::to_doubles(f.logits);
      m.grads().zero_();
      m.backward(b, opt, tape, f.record, m.loss_backward(f.logits, b.labels, 1.0f));
      CHECK(tape.bytes() == 0);
      std::vector<double> g = test::to_doubles(m.grads_flat());
      g.insert(g.end(), logits.begin(), logits.end());
      return g;
    };
    const int64_t B = 3, N = c.num_attention_heads, S = b.input_ids.size(1);
    const std::vector<double> queries = run(BackRazorPolicy::preset("none"), true, {B, N, 1, S});
    BackRazorPolicy whole_policy = BackRazorPolicy::preset("none");
    whole_policy[Site::q] = SitePolicy{SaveMode::sparse, dt, 0.0};
    whole_policy.skip_padding = false;
    const std::vector<double> whole = run(whole_policy, false, {B, N, S, S});
    REQUIRE(queries.size() == whole.size());
    const double tol = dt == DType::f64 ? 1e-12 : 2e-6;
    double max_err = 0;
    for (size_t i = 0; i < whole.size(); ++i)
      max_err = std::max(max_err, std::abs(queries[i] - whole[i]) / (1 + std::abs(whole[i])));
    CHECK(max_err <= tol);
  }
}

TEST_CASE("Back Razor keeping every element in fp32 reproduces dense gradients exactly",
          "[models][bert][backrazor]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(5);
  BertBatch b = tiny_batch(Device::cpu, 3);
  StepOptions opt{true, 5, 1, true};
  auto grads_for = [&](const BackRazorPolicy& p) { return step_grads(m, b, opt, p); };
  auto dense = grads_for(BackRazorPolicy::preset("none"));
  auto keep_all = grads_for(BackRazorPolicy::preset("all", 0.0, DType::f32));
  CHECK(keep_all == dense);
  // balanced keeping everything in fp32: the GELU input dense, the FFN2 input recomputed from it.
  CHECK(grads_for(BackRazorPolicy::preset("balanced", 0.0, DType::f32)) == dense);
  auto pruned = grads_for(BackRazorPolicy::preset("all", 0.8, DType::f16));
  CHECK(pruned != dense);
}

TEST_CASE("sparse sites rank real tokens only: padding saved as zeros, gradient exact at keep-all",
          "[models][bert][backrazor]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(5);
  BertBatch b = tiny_batch(Device::cpu, 3);  // sample 2: two tokens, then three padding positions
  StepOptions opt{true, 5, 1, true};
  auto grads_for = [&](const BackRazorPolicy& p) { return step_grads(m, b, opt, p); };
  auto dense = grads_for(BackRazorPolicy::preset("none"));
  BackRazorPolicy keep_all = BackRazorPolicy::preset("all", 0.0, DType::f32);
  REQUIRE(keep_all.skip_padding);
  // Padding positions carry no gradient, so zeroing them changes no weight gradient at all...
  CHECK(grads_for(keep_all) == dense);
  // ...nor ranking them. Then the last layer's feed-forward block runs whole (its sparse sites
  // rank every row), against the [CLS] rows of the dense step: the same sums with zero terms
  // between, so equal to rounding.
  keep_all.skip_padding = false;
  const std::vector<float> ranked = grads_for(keep_all);
  REQUIRE(ranked.size() == dense.size());
  for (size_t i = 0; i < dense.size(); ++i)
    CHECK(std::abs(ranked[i] - dense[i]) <= 1e-6f * (1 + std::abs(dense[i])));
  // ...and the saved copies of the padded sample hold zeros there, with the ranking as asked:
  // k is half of its 5 rows, which covers both real rows only when padding is not ranked.
  auto saved = [&](const BackRazorPolicy& p, TapeKey site) {
    m.policy() = p;
    Tape tape(Device::cpu);
    m.forward(b, opt, &tape);
    return tape.restore(site).to_vector<float>();  // [3, 5, W]
  };
  for (TapeKey site : {TapeKey{0, Site::attn_input}, TapeKey{0, Site::ffn1_input},
                       TapeKey{0, Site::gelu_input}, TapeKey{1, Site::attn_input}}) {
    const std::vector<float> full = saved(BackRazorPolicy::preset("none"), site);
    const size_t W = full.size() / 15;
    for (bool skip : {true, false}) {
      INFO(site.name() << " skip_padding " << skip);
      BackRazorPolicy p = BackRazorPolicy::preset("all", 0.5, DType::f32);
      p.skip_padding = skip;
      const std::vector<float> x = saved(p, site);
      int nonzero_padding = 0, kept_tokens = 0;
      for (size_t s = 0; s < 5; ++s)
        for (size_t j = 0; j < W; ++j) {
          const size_t i = (10 + s) * W + j;
          if (s < 2) kept_tokens += x[i] == full[i];
          else nonzero_padding += x[i] != 0.0f;
        }
      CHECK((skip ? nonzero_padding == 0 : nonzero_padding > 0));
      CHECK((skip ? size_t(kept_tokens) == 2 * W : size_t(kept_tokens) < 2 * W));
    }
  }
}

TEST_CASE("balanced preset: which sites, what the tape holds, recompute stores nothing",
          "[models][bert][backrazor]") {
  BackRazorPolicy p = BackRazorPolicy::preset("balanced", 0.8, DType::f16);
  CHECK(p[Site::q].mode == SaveMode::sparse);
  CHECK(p[Site::ffn1_input].mode == SaveMode::sparse);
  CHECK(p[Site::gelu_input].mode == SaveMode::low_precision);
  CHECK(p[Site::gelu_input].value_dtype == DType::f16);
  CHECK(p[Site::ffn2_input].mode == SaveMode::recompute);
  CHECK(p[Site::pooler_input].mode == SaveMode::dense);
  CHECK(p[Site::classifier_input].mode == SaveMode::dense);
  CHECK_THAT(p.describe(), Catch::Contains("ffn2_input: recompute\n"));

  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(8);
  m.policy() = p;
  BertBatch b = tiny_batch(Device::cpu, 3);
  StepOptions opt{true, 3, 0, true};
  Tape tape(Device::cpu);
  ForwardResult fwd = m.forward(b, opt, &tape);
  Tensor logits = fwd.logits;
  int recomputed = 0;
  for (const SiteRecord& r : tape.records())
    if (r.key.site == Site::ffn2_input) {
      ++recomputed;
      CHECK(r.stored_bytes == 0);
      CHECK(r.dense_bytes > 0);
      CHECK(r.policy.mode == SaveMode::recompute);
      CHECK_FALSE(tape.has(r.key));
    }
  CHECK(recomputed == m.config().num_hidden_layers);
  m.grads().zero_();
  m.backward(b, opt, tape, fwd.record, m.loss_backward(logits, b.labels, 1.0f));
  CHECK(tape.bytes() == 0);
}

TEST_CASE("gradients live in one flat buffer, grouped in the order backward finishes them",
          "[models][bert][ddp]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(9);
  const int groups = m.num_grad_groups();
  REQUIRE(groups == m.config().num_hidden_layers + 2);
  const Tensor& flat = m.grads_flat();
  REQUIRE(m.grad_group_offset(0) == 0);
  REQUIRE(m.grad_group_offset(groups) == flat.numel());
  REQUIRE(m.grad_group_offsets().size() == size_t(groups) + 1);
  for (int g = 0; g <= groups; ++g) REQUIRE(m.grad_group_offsets()[size_t(g)] == m.grad_group_offset(g));
  CHECK_THROWS_WITH(m.grad_group_offset(groups + 1), Catch::Contains("grad_group_offset"));
  // The group of each gradient, from its address: classifier and pooler, layers last to first,
  // embeddings. Every gradient starts a multiple of 256 bytes into the buffer, inside its group.
  auto group_of = [&](const Tensor& t) {
    const int64_t off = (static_cast<const char*>(t.raw()) - static_cast<const char*>(flat.raw())) / 4;
    for (int g = 0; g < groups; ++g)
      if (off >= m.grad_group_offset(g) && off + t.numel() <= m.grad_group_offset(g + 1)) return g;
    return -1;
  };
  const BertWeights& gw = m.grads();
  int64_t covered = 0;
  for (const Tensor& t : gw.all()) {
    CHECK(t.storage() == flat.storage());
    CHECK((static_cast<const char*>(t.raw()) - static_cast<const char*>(flat.raw())) % 256 == 0);
    covered += t.numel();
  }
  CHECK(covered <= flat.numel());
  CHECK(group_of(gw.classifier_w) == 0);
  CHECK(group_of(gw.pooler_b) == 0);
  const int L = m.config().num_hidden_layers;
  for (int l = 0; l < L; ++l)
    for (const Tensor& t : {gw.layers[size_t(l)].q_w, gw.layers[size_t(l)].ffn2_b, gw.layers[size_t(l)].ln2_w})
      CHECK(group_of(t) == L - l);
  CHECK(group_of(gw.word_emb) == L + 1);
  CHECK(group_of(gw.emb_ln_b) == L + 1);

  // backward announces every group once, in order, and an announced group never changes again.
  BertBatch b = tiny_batch(Device::cpu, 3);
  StepOptions opt{true, 21, 2, true};
  for (const char* preset : {"none", "all"}) {
    INFO(preset);
    m.policy() = BackRazorPolicy::preset(preset, 0.8, DType::f16);
    Tape tape(Device::cpu);
    ForwardResult fwd = m.forward(b, opt, &tape);
    Tensor logits = fwd.logits;
    m.grads().zero_();
    std::vector<int> announced;
    std::vector<std::vector<float>> at_announce;
    m.backward(b, opt, tape, fwd.record, m.loss_backward(logits, b.labels, 1.0f), [&](int g) {
      announced.push_back(g);
      at_announce.push_back(
          flat.rows(m.grad_group_offset(g), m.grad_group_offset(g + 1)).to_vector<float>());
    });
    std::vector<int> expect(static_cast<size_t>(groups));
    for (int g = 0; g < groups; ++g) expect[size_t(g)] = g;
    REQUIRE(announced == expect);
    for (int g = 0; g < groups; ++g) {
      std::vector<float> now =
          flat.rows(m.grad_group_offset(g), m.grad_group_offset(g + 1)).to_vector<float>();
      CHECK(now == at_announce[size_t(g)]);
      bool nonzero = false;
      for (float x : now) nonzero |= x != 0.0f;
      CHECK(nonzero);
    }
  }
}

TEST_CASE("Back Razor per-site overrides: grammar, layering on a preset, malformed items",
          "[models][backrazor]") {
  BackRazorPolicy p = BackRazorPolicy::preset("all", 0.8, DType::f16);
  p.apply_overrides("gelu_input=low:bf16, probs=dense,v=sparse:fp32:0.9 ,q=sparse:0.5");
  CHECK(p[Site::gelu_input].mode == SaveMode::low_precision);
  CHECK(p[Site::gelu_input].value_dtype == DType::bf16);
  CHECK(p[Site::probs].mode == SaveMode::dense);
  CHECK(p[Site::v].mode == SaveMode::sparse);
  CHECK(p[Site::v].value_dtype == DType::f32);
  CHECK(p[Site::v].prune_ratio == 0.9);
  CHECK(p[Site::q].value_dtype == DType::f16);  // kept from the preset
  CHECK(p[Site::q].prune_ratio == 0.5);
  CHECK(p[Site::k].mode == SaveMode::sparse);   // untouched
  CHECK(p[Site::k].prune_ratio == 0.8);

  BackRazorPolicy d = BackRazorPolicy::preset("none");
  d.apply_overrides("");
  CHECK_FALSE(d.any_sparse());
  d.apply_overrides("ffn2_input=sparse");
  CHECK(d[Site::ffn2_input].mode == SaveMode::sparse);
  CHECK(d[Site::ffn2_input].value_dtype == DType::f16);
  CHECK(d[Site::ffn2_input].prune_ratio == 0.8);

  using Catch::Contains;
  BackRazorPolicy e;
  CHECK_THROWS_WITH(e.apply_overrides("gelu=low:fp16"), Contains("unknown Back Razor site 'gelu'"));
  CHECK_THROWS_WITH(e.apply_overrides("q"), Contains("expected site=mode"));
  CHECK_THROWS_WITH(e.apply_overrides("q=sparse,,k=dense"), Contains("empty item"));
  CHECK_THROWS_WITH(e.apply_overrides("q=half"),
                    Contains("mode 'half' is not dense, low, sparse or recompute"));
  CHECK_THROWS_WITH(e.apply_overrides("gelu_input=recompute"),
                    Contains("only ffn2_input can be recomputed"));
  CHECK_THROWS_WITH(e.apply_overrides("ffn2_input=recompute:fp16"),
                    Contains("recompute takes no dtype or ratio"));
  e.apply_overrides("ffn2_input=recompute");
  CHECK(e[Site::ffn2_input].mode == SaveMode::recompute);
  CHECK_THROWS_WITH(e.apply_overrides("q=low"), Contains("q=low:fp16"));
  CHECK_THROWS_WITH(e.apply_overrides("q=low:fp32"), Contains("'fp32' is not fp16 or bf16"));
  CHECK_THROWS_WITH(e.apply_overrides("q=dense:fp16"), Contains("dense takes no dtype"));
  CHECK_THROWS_WITH(e.apply_overrides("q=sparse:1.0"), Contains("prune ratio 1 not in [0, 1)"));
  CHECK_THROWS_WITH(e.apply_overrides("q=sparse:int8"), Contains("'int8' is not fp16, bf16 or fp32"));
  CHECK_THROWS_WITH(e.apply_overrides("q=sparse:fp16:0.5:1"), Contains("sparse[:dtype][:ratio]"));
}

TEST_CASE("backward follows the forward's record, not settings changed in between",
          "[models][bert][record]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(21);
  BertBatch b = tiny_batch(Device::cpu, 3);
  StepOptions opt{true, 9, 2, true};
  auto grads_after = [&](const BackRazorPolicy& p, AttentionKernel k, auto&& between) {
    m.policy() = p;
    m.set_attention_kernel(k);
    Tape tape(Device::cpu);
    ForwardResult fwd = m.forward(b, opt, &tape);
    between();
    m.grads().zero_();
    m.backward(b, opt, tape, fwd.record, m.loss_backward(fwd.logits, b.labels, 1.0f));
    CHECK(tape.bytes() == 0);
    return std::pair{m.grads_flat().to_vector<float>(), fwd.record};
  };
  auto nothing = [] {};
  for (const char* preset : {"balanced", "seed"}) {
    INFO(preset);
    const BackRazorPolicy p = BackRazorPolicy::preset(preset);
    auto [want, rec] = grads_after(p, AttentionKernel::materialized, nothing);
    REQUIRE(rec.layers.size() == 2);
    CHECK_FALSE(rec.layers[0].flash);
    CHECK(rec.layers[1].ffn2_recomputed() == (std::string(preset) == "balanced"));
    auto [got, rec2] = grads_after(p, AttentionKernel::materialized, [&] {
      m.policy() = BackRazorPolicy::preset("none");
      m.set_attention_kernel(AttentionKernel::flash);
    });
    CHECK(got == want);
  }
  // The CPU runs the flash reference when asked: its record says so, and backward follows it.
  const BackRazorPolicy none = BackRazorPolicy::preset("none");
  auto [want, rec] = grads_after(none, AttentionKernel::flash, nothing);
  CHECK(rec.layers[0].flash);
  CHECK(rec.any_flash());
  auto [got, rec2] = grads_after(none, AttentionKernel::flash, [&] {
    m.set_attention_kernel(AttentionKernel::materialized);
  });
  CHECK(got == want);
  Tape tape(Device::cpu);
  ForwardResult fwd = m.forward(b, opt, &tape);
  fwd.record.layers.pop_back();
  CHECK_THROWS_WITH(m.backward(b, opt, tape, fwd.record, m.loss_backward(fwd.logits, b.labels, 1.0f)),
                    Catch::Contains("the forward record has 1 layers, the model 2"));
}


TEST_CASE("gradient checkpointing is exact: logits and gradients bit-identical, inside any policy",
          "[models][bert][checkpoint]") {
  BertConfig c = tiny_config();
  // Layer 0 recomputed from the embeddings, 1 from layer 0's kept output (or from its input), 2
  // from layer 1's kept output (or its input), 3 kept. Dense inside, layers 0 and 1 keep their
  // outputs and their recomputes stop at the FFN2 input; with min_bytes or Back Razor inside they
  // keep only inputs.
  c.num_hidden_layers = 4;
  BertForSequenceClassification m(c, Device::cpu, DType::f32);
  m.init_weights(31);
  perturb(m, 32);
  BertBatch b = tiny_batch(Device::cpu, 3);  // padded sample: the recompute must skip padding too
  StepOptions opt{true, 77, 4, true};
  for (const char* preset : {"none", "seed", "all", "balanced"}) {
    INFO(preset);
    m.policy() = BackRazorPolicy::preset(preset);
    m.layer_plans().clear();
    m.set_gradient_checkpointing(false);
    const StepOut plain = plan_step(m, b, opt);
    for (bool min_bytes : {false, true}) {
      INFO("min_bytes " << min_bytes);
      m.layer_plans() = std::vector<LayerPlan>(4, LayerPlan{m.policy(), true, min_bytes});
      const StepOut ckpt = plan_step(m, b, opt);
      CHECK(ckpt.logits == plain.logits);
      CHECK(ckpt.grads == plain.grads);
      CHECK(ckpt.saved < plain.saved);
      // every layer recomputed but the last, whose recompute would follow its forward at once
      const std::vector<int64_t>& rp = ckpt.report.recompute_peak_bytes;
      REQUIRE(rp.size() == 4);
      CHECK(rp[0] > 0);
      CHECK(rp[1] > 0);
      CHECK(rp[2] > 0);
      CHECK(rp[3] == 0);
    }
    m.layer_plans().clear();
    m.set_gradient_checkpointing(true);
    CHECK(plan_step(m, b, opt).grads == plain.grads);
    for (int64_t peak : plain.report.recompute_peak_bytes) CHECK(peak == 0);
    // One layer checkpointed under balanced, the other plain dense: equal to the same per-layer
    // policies without the checkpoint.
    m.set_gradient_checkpointing(false);
    const BackRazorPolicy balanced = BackRazorPolicy::preset("balanced");
    const BackRazorPolicy none = BackRazorPolicy::preset("none");
    m.layer_plans() = {LayerPlan{none, false}, LayerPlan{balanced, false}, LayerPlan{none, false},
                       LayerPlan{none, false}};
    const StepOut mixed = plan_step(m, b, opt);
    m.layer_plans()[1].checkpoint = true;
    const StepOut mixed_ckpt = plan_step(m, b, opt);
    CHECK(mixed_ckpt.logits == mixed.logits);
    CHECK(mixed_ckpt.grads == mixed.grads);
    CHECK(mixed_ckpt.logits == plain.logits);  // the forward is exact under every plan
    CHECK(mixed_ckpt.report.recompute_peak_bytes[0] == 0);
    CHECK(mixed_ckpt.report.recompute_peak_bytes[1] > 0);
    CHECK(mixed_ckpt.report.recompute_peak_bytes[2] == 0);
    // A dense checkpoint keeping its output before a balanced one that keeps only its input.
    m.layer_plans() = {LayerPlan{none, true}, LayerPlan{balanced, true}, LayerPlan{none, false},
                       LayerPlan{none, false}};
    const StepOut chain = plan_step(m, b, opt);
    m.layer_plans()[0].checkpoint = m.layer_plans()[1].checkpoint = false;
    CHECK(chain.grads == plan_step(m, b, opt).grads);
  }
  m.layer_plans() = {LayerPlan{}};
  CHECK_THROWS_WITH(plan_step(m, b, opt), Catch::Contains("1 layer plans for 4 encoder layers"));
}

namespace {

// Chunk sums and chunk products round differently from one whole-batch product, and nothing else
// differs.
void check_close(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  CHECK(scale > 0);
  CHECK(worst <= 1e-5 * scale);
}

// With the chunking `set_chunked(true)` makes, every plan's step (with and without checkpointing)
// has the same logits, checkpointing changes no bit of the gradients, the tape holds what it holds
// for the whole batch, and logits and gradients stay close to the whole batch's.
void check_chunking(BertForSequenceClassification& m, const BertBatch& b, const StepOptions& opt,
                    const std::vector<BackRazorPolicy>& plans,
                    const std::function<void(bool)>& set_chunked) {
  std::vector<float> chunked_logits;  // the forward is exact: one set of logits for every plan
  for (const BackRazorPolicy& p : plans) {
    INFO(p.name);
    m.policy() = p;
    m.layer_plans().clear();
    m.set_gradient_checkpointing(false);
    const StepOut whole = plan_step(m, b, opt);
    set_chunked(true);
    const StepOut chunked = plan_step(m, b, opt);
    m.set_gradient_checkpointing(true);
    const StepOut chunked_ckpt = plan_step(m, b, opt);
    set_chunked(false);
    m.set_gradient_checkpointing(false);
    if (chunked_logits.empty()) chunked_logits = chunked.logits;
    CHECK(chunked.logits == chunked_logits);
    CHECK(chunked.saved == whole.saved);  // per-sample packs: the same bytes chunk by chunk
    CHECK(chunked_ckpt.logits == chunked.logits);
    CHECK(chunked_ckpt.grads == chunked.grads);
    check_close(chunked.logits, whole.logits);
    check_close(chunked.grads, whole.grads);
  }
}

}  // namespace

TEST_CASE("attention by chunks of samples: the same bits under every plan, close to the whole batch",
          "[models][bert][checkpoint]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(41);
  perturb(m, 42);
  BertBatch b = tiny_batch(Device::cpu, 3);  // padded sample: the chunked pack skips padding too
  StepOptions opt{true, 78, 2, true};
  BackRazorPolicy low = BackRazorPolicy::preset("none");
  low.apply_overrides("probs=low:fp16,q=low:bf16,attn_input=low:fp16");
  check_chunking(m, b, opt,
                 {BackRazorPolicy::preset("none"), BackRazorPolicy::preset("seed"),
                  BackRazorPolicy::preset("balanced"), BackRazorPolicy::preset("all"), low},
                 [&](bool on) {  // one sample per chunk, or the whole batch of 3 in one
                   m.set_attention_workspace(on ? 1 : kAttentionWorkspaceBytes);
                 });
}

TEST_CASE("FFN by chunks of samples: the same bits under every plan, close to the whole batch",
          "[models][bert][checkpoint]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  m.init_weights(43);
  perturb(m, 44);
  BertBatch b = tiny_batch(Device::cpu, 3);
  StepOptions opt{true, 79, 2, true};
  BackRazorPolicy low = BackRazorPolicy::preset("none");
  low.apply_overrides("gelu_input=low:fp16,ffn2_input=recompute,ffn1_input=low:fp16");
  BackRazorPolicy sparse_ffn = BackRazorPolicy::preset("none");
  sparse_ffn.apply_overrides("gelu_input=sparse:fp32:0.6,ffn2_input=sparse:fp16:0.7");
  check_chunking(m, b, opt,
                 {BackRazorPolicy::preset("none"), BackRazorPolicy::preset("seed"),
                  BackRazorPolicy::preset("balanced"), low, sparse_ffn},
                 [&](bool on) {  // one sample per chunk, forward and backward
                   m.set_ffn_workspace(on ? 1 : kFfnWorkspaceBytes);
                 });
}

TEST_CASE("a checkpointed layer keeps only its input until backward", "[models][bert][checkpoint]") {
  BertConfig c = tiny_config();
  c.num_hidden_layers = 3;
  BertForSequenceClassification m(c, Device::cpu, DType::f32);
  m.init_weights(3);
  BertBatch b = tiny_batch(Device::cpu, 3);
  StepOptions opt{true, 5, 1, true};
  const int64_t X = 3 * 5 * c.hidden_size * 4, stats = 3 * 5 * 4;
  // Only inputs (min_bytes): layer 0's input is the embeddings' output, which backward recomputes
  // from the token ids; layer 1 keeps its input. Kept outputs (the default, dense inside): layer 0
  // keeps its LN2 input and statistics, layer 1 nothing (its input is their LayerNorm).
  for (bool min_bytes : {true, false}) {
    INFO("min_bytes " << min_bytes);
    m.layer_plans() = std::vector<LayerPlan>(3, LayerPlan{BackRazorPolicy{}, true, min_bytes});
    Tape tape(Device::cpu);
    ForwardResult fwd = m.forward(b, opt, &tape);
    int64_t bytes[2] = {0, 0};
    bool layer2_saved = false;
    for (const SiteRecord& r : tape.records()) {
      if (r.key.layer == 0) {
        CHECK_FALSE(min_bytes);
        CHECK((r.key.site == Site::ln2_input || r.key.site == Site::ln2_mean ||
               r.key.site == Site::ln2_rstd));
        bytes[0] += r.stored_bytes;
      }
      if (r.key.layer == 1) {
        CHECK(min_bytes);
        CHECK(r.key.site == Site::layer_input);
        CHECK(r.shape == Shape{3, 5, c.hidden_size});
        bytes[1] += r.stored_bytes;
      }
      // the last layer keeps its tape: recomputed, it would run right after its forward
      if (r.key.layer == 2) {
        CHECK(r.key.site != Site::layer_input);
        layer2_saved = true;
      }
    }
    CHECK(bytes[0] == (min_bytes ? 0 : X + 2 * stats));
    CHECK(bytes[1] == (min_bytes ? X : 0));
    CHECK(layer2_saved);
    REQUIRE(fwd.record.layers.size() == 3);
    CHECK(fwd.record.layers[0].checkpoint);
    CHECK(fwd.record.layers[1].checkpoint);
    CHECK_FALSE(fwd.record.layers[2].checkpoint);
    CHECK(fwd.record.layers[0].keeps_output == !min_bytes);
    CHECK_FALSE(fwd.record.layers[1].keeps_output);  // the next layer is not a checkpoint
  }
  m.layer_plans().clear();
  // Evaluation (no tape) never checkpoints.
  ForwardResult eval = m.forward(b, StepOptions{}, nullptr);
  for (const LayerRecord& l : eval.record.layers) CHECK_FALSE(l.checkpoint);
}

TEST_CASE("layer plans parse ranges, presets and checkpoints", "[models][backrazor][checkpoint]") {
  const BackRazorPolicy seed = BackRazorPolicy::preset("seed");
  const LayerPlan base{seed, false};
  auto make = [](std::string_view name) { return BackRazorPolicy::preset(name); };
  std::vector<LayerPlan> p = parse_layer_plans("0-1=checkpoint, 2=balanced,4-5=checkpoint+all", 6, base, make);
  REQUIRE(p.size() == 6);
  CHECK(p[0].checkpoint);
  CHECK(p[0].policy == seed);
  CHECK(p[1].checkpoint);
  CHECK_FALSE(p[2].checkpoint);
  CHECK(p[2].policy == BackRazorPolicy::preset("balanced"));
  CHECK(p[3].policy == seed);
  CHECK_FALSE(p[3].checkpoint);
  CHECK(p[4].checkpoint);
  CHECK(p[5].policy == BackRazorPolicy::preset("all"));
  p = parse_layer_plans("*=checkpoint+dense,3=seed", 6, base, make);
  CHECK(p[0].checkpoint);
  CHECK(p[0].policy == BackRazorPolicy::preset("none"));
  CHECK_FALSE(p[3].checkpoint);
  CHECK(describe_layer_plans(p) ==
        "layers 0-1: checkpoint (output kept, recomputed in backward up to the FFN2 input), "
        "inside dense\n"
        "layer 2: checkpoint (recomputed in backward), inside dense\n"  // layer 3 is no checkpoint
        "layer 3: seed\n"
        "layer 4: checkpoint (recomputed in backward), inside dense\n"
        "layer 5: dense\n");  // as the step runs it: the last layer is never checkpointed
  // Back Razor inside: the checkpoints keep only their inputs (bytes are what they are for).
  p = parse_layer_plans("*=checkpoint+balanced", 6, base, make);
  CHECK_FALSE(p[0].keeps_output());
  CHECK(describe_layer_plans(p) ==
        "layers 0-4: checkpoint (recomputed in backward), inside balanced\n"
        "layer 5: balanced\n");
  CHECK(parse_layer_plans("", 2, base, make).at(1).policy == seed);
  CHECK(parse_layer_plans("1=dense", 2, LayerPlan{seed, true}, make).at(0).checkpoint);
  CHECK_THROWS_WITH(parse_layer_plans("7=dense", 6, base, make),
                    Catch::Contains("layer plan '7=dense': layer '7' is not one of 0..5"));
  CHECK_THROWS_WITH(parse_layer_plans("3-1=dense", 6, base, make), Catch::Contains("runs backwards"));
  CHECK_THROWS_WITH(parse_layer_plans("0-2", 6, base, make), Catch::Contains("expected RANGE=PLAN"));
  CHECK_THROWS_WITH(parse_layer_plans("1=checkpointy", 6, base, make),
                    Catch::Contains("expected checkpoint or checkpoint+PRESET"));
  CHECK_THROWS_WITH(parse_layer_plans("1=checkpoint+", 6, base, make),
                    Catch::Contains("no preset after '+'"));
  CHECK_THROWS_WITH(parse_layer_plans("1=fancy", 6, base, make),
                    Catch::Contains("unknown Back Razor preset 'fancy'"));
}

TEST_CASE("zero_grad zeros every gradient while rewriting only the word rows backward wrote",
          "[models][bert]") {
  BertConfig c = tiny_config();
  c.vocab_size = 200;  // the batches touch 9 and 9 rows of it: the row-by-row path
  BertForSequenceClassification m(c, Device::cpu);
  m.init_weights(5);
  BertBatch a = tiny_batch(Device::cpu, 3), b = tiny_batch(Device::cpu, 3);
  std::vector<int32_t> ids = a.input_ids.to_vector<int32_t>();
  for (int32_t& id : ids)
    if (id != 0) id += 150;
  b.input_ids = Tensor::from_host(ids, {3, 5}, Device::cpu);
  StepOptions opt{true, 9, 1, true};
  auto backward = [&](const BertBatch& x) {
    Tape tape(Device::cpu);
    ForwardResult fwd = m.forward(x, opt, &tape);
    m.backward(x, opt, tape, fwd.record, m.loss_backward(fwd.logits, x.labels, 1.0f));
  };
  auto all_zero = [&] {
    for (float v : m.grads_flat().to_vector<float>())
      if (v != 0.0f) return false;
    return true;
  };
  m.grads().word_emb.rows(40, 41).fill_bytes_(0x3f);  // a write zero_grad is told nothing about...
  m.zero_grad();  // ...is still zeroed: the first zero_grad() zeros everything
  CHECK(all_zero());
  backward(a);
  const std::vector<float> fresh = m.grads_flat().to_vector<float>();
  backward(b);  // accumulates: two sets of rows
  CHECK(!all_zero());
  m.zero_grad();
  CHECK(all_zero());
  backward(a);
  CHECK(m.grads_flat().to_vector<float>() == fresh);  // the same bits as from a full zero
  m.grads().word_emb.rows(77, 78).fill_bytes_(0x3f);  // as an all-reduce would: other ranks' rows
  m.note_grads_written();
  m.zero_grad();
  CHECK(all_zero());
}
