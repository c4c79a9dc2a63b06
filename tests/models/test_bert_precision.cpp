// BertForSequenceClassification across compute dtypes and attention kernels: bf16 compute with fp32
// master weights (CUDA) and f32 CUDA against the CPU f32 model; the fused flash attention path
// against the materialized one (CPU reference here, CUDA kernels when a device is present).
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "harness.h"
#include "kernels/cast.h"
#include "kernels/gemm.h"
#include "models/bert.h"

using namespace br;

namespace {

// H = 128 with 2 heads: head dim 64, what the fused CUDA kernel needs.
BertConfig d64_config(int num_labels) {
  BertConfig c;
  c.vocab_size = 50;
  c.hidden_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 256;
  c.max_position_embeddings = 32;
  c.type_vocab_size = 2;
  c.hidden_dropout_prob = 0.1;
  c.attention_probs_dropout_prob = 0.1;
  c.layer_norm_eps = 1e-12;
  c.initializer_range = 0.05;
  c.pad_token_id = 0;
  c.set_num_labels(num_labels);
  return c;
}

// Head dim 4: the CPU flash reference takes any head dim.
BertConfig tiny_config() {
  BertConfig c = d64_config(3);
  c.vocab_size = 13;
  c.hidden_size = 8;
  c.intermediate_size = 7;
  c.max_position_embeddings = 9;
  c.initializer_range = 0.5;
  return c;
}

// B = 3 samples of length S; the last is padded after S/2 real tokens.
BertBatch make_batch(const BertConfig& c, int64_t S, Device d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(1, int32_t(c.vocab_size - 1));
  const int64_t B = 3;
  std::vector<int32_t> ids(size_t(B * S)), tt(size_t(B * S)), am(size_t(B * S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const bool real = b < B - 1 || s < S / 2;
      const size_t i = size_t(b * S + s);
      ids[i] = real ? tok(rng) : 0;
      tt[i] = real && s >= S / 3 ? 1 : 0;
      am[i] = real ? 1 : 0;
    }
  BertBatch batch;
  batch.input_ids = Tensor::from_host(ids, {B, S}, d);
  batch.token_type_ids = Tensor::from_host(tt, {B, S}, d);
  batch.attention_mask = Tensor::from_host(am, {B, S}, d);
  batch.example_ids = Tensor::from_host(std::vector<int32_t>{17, 4, 230}, {3}, d);
  if (c.num_labels() == 1)
    batch.labels = Tensor::from_host(std::vector<float>{0.5f, -1.0f, 2.0f}, {3}, d);
  else
    batch.labels = Tensor::from_host(std::vector<int32_t>{0, 2, 1}, {3}, d);
  return batch;
}

// Moves LayerNorm weights and every bias away from 1/0 so their gradients carry signal.
void perturb(BertForSequenceClassification& m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (auto& [name, t] : m.params().named()) {
    if (name.find("LayerNorm") == std::string::npos && name.find(".bias") == std::string::npos)
      continue;
    std::vector<double> a = test::to_doubles(t);
    Tensor r = test::random_tensor(t.shape(), DType::f64, rng, Device::cpu, -0.3, 0.3);
    std::vector<double> d = r.to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) a[i] += d[i];
    Tensor host = Tensor::from_host(a, t.shape());
    Tensor conv = Tensor::empty(t.shape(), t.dtype());
    cast(conv, host);
    t.copy_from(conv);
  }
}

void copy_params(BertForSequenceClassification& dst, const BertForSequenceClassification& src) {
  std::vector<Tensor> d = dst.params().all(), s = src.params().all();
  REQUIRE(d.size() == s.size());
  for (size_t i = 0; i < d.size(); ++i) d[i].copy_from(s[i]);
}

struct StepResult {
  Tensor logits;              // on the CPU, model's loss dtype
  std::vector<Tensor> grads;  // on the CPU
  std::vector<SiteRecord> records;
  int64_t tape_peak = 0;
};

StepResult train_step(BertForSequenceClassification& m, const BertBatch& b, const StepOptions& opt) {
  Tape tape(m.device());
  ForwardResult fwd = m.forward(b, opt, &tape);
  Tensor logits = fwd.logits;
  StepResult r;
  r.records = tape.records();
  r.tape_peak = tape.peak_bytes();
  m.grads().zero_();
  m.backward(b, opt, tape, fwd.record, m.loss_backward(logits, b.labels, 1.0f));
  CHECK(tape.bytes() == 0);
  r.logits = logits.to(Device::cpu);
  for (const Tensor& g : m.grads().all()) r.grads.push_back(g.to(Device::cpu));
  return r;
}

// Per tensor: ||got − ref|| / max(||ref||, floor) <= tol, floor = 1e-2 · the largest reference
// gradient norm (the key bias's gradient is zero in exact arithmetic — softmax ignores a constant
// per query — so its own relative error is noise over noise). Also the relative L2 error of all
// gradients together <= tol. Returns that global error.
double check_grads(const std::vector<Tensor>& got, const std::vector<Tensor>& ref,
                   const std::vector<std::pair<std::string, Tensor>>& names, double tol) {
  REQUIRE(got.size() == ref.size());
  double max_norm = 0, num = 0, den = 0;
  std::vector<double> err(got.size()), norm(got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    std::vector<double> a = test::to_doubles(got[i]), b = test::to_doubles(ref[i]);
    REQUIRE(a.size() == b.size());
    double e = 0, n = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      e += std::isfinite(a[j]) ? (a[j] - b[j]) * (a[j] - b[j]) : INFINITY;
      n += b[j] * b[j];
    }
    err[i] = std::sqrt(e), norm[i] = std::sqrt(n);
    max_norm = std::max(max_norm, norm[i]);
    num += e, den += n;
  }
  REQUIRE(max_norm > 0);
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(names[i].first << ": |err| " << err[i] << ", |ref| " << norm[i]);
    CHECK(err[i] / std::max(norm[i], 1e-2 * max_norm) <= tol);
  }
  const double global = std::sqrt(num) / std::sqrt(den);
  CHECK(global <= tol);
  return global;
}

bool has_site(const std::vector<SiteRecord>& rs, const std::string& name) {
  for (const SiteRecord& r : rs)
    if (r.site == name) return true;
  return false;
}

}  // namespace

TEST_CASE("bert compute dtype: bf16 only on CUDA with f32 parameters", "[models][bert][bf16]") {
  BertForSequenceClassification m(tiny_config(), Device::cpu, DType::f32);
  CHECK(m.compute_dtype() == DType::f32);
  CHECK_THROWS_WITH(m.set_compute_dtype(DType::bf16), Catch::Contains("bf16 compute needs a CUDA model"));
  CHECK_THROWS_WITH(m.set_compute_dtype(DType::f16), Catch::Contains("must be the parameter dtype f32 or bf16"));
  CHECK(m.compute_dtype() == DType::f32);
  m.set_compute_dtype(DType::f32);
  CHECK(m.compute_param_bytes() == 0);
  BertForSequenceClassification m64(tiny_config(), Device::cpu, DType::f64);
  CHECK(m64.compute_dtype() == DType::f64);
  CHECK_THROWS_WITH(m64.set_compute_dtype(DType::f32), Catch::Contains("set_compute_dtype"));
  CHECK(attention_kernel_from_name("flash") == AttentionKernel::flash);
  CHECK_THROWS_WITH(attention_kernel_from_name("fused"), Catch::Contains("auto, materialized, flash"));
}

// `--bf16 --device cpu`: the products round both operands to bf16. The model rounds its linear
// weight matrices once per forward into bf16 copies (2 bytes per element, compute_param_bytes)
// that forward and backward take; a forward after the weights change uses the new ones, with the
// bits of a fresh model holding them.
TEST_CASE("bert in the CPU's bf16 product mode: weight copies made per forward, never stale",
          "[models][bert][bf16]") {
  struct Mode {
    Mode() { set_cpu_bf16_matmul(true); }
    ~Mode() { set_cpu_bf16_matmul(false); }
  };
  BertConfig c = tiny_config();
  BertForSequenceClassification m(c, Device::cpu, DType::f32);
  m.init_weights(21);
  perturb(m, 5);
  BertBatch b = make_batch(c, 6, Device::cpu, 8);
  StepOptions opt{true, 77, 2, true};
  const StepResult f32 = train_step(m, b, opt);
  CHECK(m.compute_param_bytes() == 0);
  // The linear layers' weight matrices: 2-D, not an embedding table.
  auto is_matrix = [](const std::string& name, const Tensor& t) {
    return t.dim() == 2 && name.find("embeddings") == std::string::npos;
  };
  int64_t matrix_elems = 0;
  for (auto& [name, t] : m.params().named())
    if (is_matrix(name, t)) matrix_elems += t.numel();
  StepResult first, second, fresh;
  {
    Mode on;
    first = train_step(m, b, opt);
    CHECK(m.compute_param_bytes() == 2 * matrix_elems);
    // New weight matrices, as an optimizer step writes them.
    std::mt19937_64 rng(9);
    for (auto& [name, t] : m.params().named()) {
      if (!is_matrix(name, t)) continue;
      std::vector<float> v = t.to_vector<float>();
      for (float& x : v) x *= 1.0f + 0.05f * std::uniform_real_distribution<float>(-1, 1)(rng);
      t.copy_from(Tensor::from_host(v, t.shape()));
    }
    second = train_step(m, b, opt);
    BertForSequenceClassification m2(c, Device::cpu, DType::f32);
    copy_params(m2, m);
    fresh = train_step(m2, b, opt);
  }
  CHECK(second.logits.to_vector<float>() == fresh.logits.to_vector<float>());
  REQUIRE(second.grads.size() == fresh.grads.size());
  for (size_t i = 0; i < fresh.grads.size(); ++i) {
    INFO("gradient " << i);
    CHECK(second.grads[i].to_vector<float>() == fresh.grads[i].to_vector<float>());
  }
  CHECK(second.logits.to_vector<float>() != first.logits.to_vector<float>());
  // bf16 really rounded, and stays near f32
  CHECK(first.logits.to_vector<float>() != f32.logits.to_vector<float>());
  CHECK(test::rel_l2(first.logits, f32.logits) < 2e-2);
  // Off again: f32 products, no copies held.
  train_step(m, b, opt);
  CHECK(m.compute_param_bytes() == 0);
}

TEST_CASE("bert flash attention path matches the materialized one on the CPU reference",
          "[models][bert][flash]") {
  BertConfig c = tiny_config();
  BertForSequenceClassification m(c, Device::cpu, DType::f32);
  m.init_weights(21);
  perturb(m, 5);
  BertBatch b = make_batch(c, 6, Device::cpu, 8);
  StepOptions opt{true, 77, 2, true};
  CHECK_FALSE(m.uses_flash_attention());  // automatic: materialized on the CPU
  auto names = m.params().named();

  // Dense attention-output input: the output comes from that site, nothing extra is saved.
  // Sparse attention-output input: the exact output is saved dense beside it. The materialized
  // kernel runs the last layer's attention for the [CLS] queries only (flash, every query): the
  // same gradients where every site there is dense; the sparse site ranks every row (skip_padding
  // off), so that the last layer runs whole as flash does, and keeps the same values.
  for (bool sparse_ctx : {false, true}) {
    INFO("attention-output dense input sparse: " << sparse_ctx);
    BackRazorPolicy pol;
    pol.skip_padding = !sparse_ctx;
    if (sparse_ctx) pol[Site::attn_out_input] = SitePolicy{SaveMode::sparse, DType::f16, 0.5};
    m.policy() = pol;
    m.set_attention_kernel(AttentionKernel::materialized);
    StepResult mat = train_step(m, b, opt);
    m.set_attention_kernel(AttentionKernel::flash);
    REQUIRE(m.uses_flash_attention());
    StepResult fl = train_step(m, b, opt);
    CHECK(test::rel_l2(fl.logits, mat.logits) <= 1e-5);
    check_grads(fl.grads, mat.grads, names, 1e-4);
    CHECK(has_site(mat.records, "layer1.probs"));
    CHECK_FALSE(has_site(fl.records, "layer1.probs"));
    CHECK(has_site(fl.records, "layer1.attn_lse"));
    CHECK(has_site(fl.records, "layer1.attn_out") == sparse_ctx);
    // Flash saves less than P in a layer of every query: the first.
    auto layer_bytes = [](const std::vector<SiteRecord>& records, int layer) {
      int64_t n = 0;
      for (const SiteRecord& r : records) n += r.key.layer == layer ? r.stored_bytes : 0;
      return n;
    };
    CHECK(layer_bytes(fl.records, 0) < layer_bytes(mat.records, 0));
    for (const SiteRecord& r : mat.records)
      if (r.site == "layer1.probs") CHECK(r.shape == (sparse_ctx ? Shape{3, 2, 6, 6} : Shape{3, 2, 1, 6}));
  }
  m.policy() = BackRazorPolicy::preset("seed");
  CHECK_THROWS_WITH(m.uses_flash_attention(), Catch::Contains("Back Razor needs P"));
  m.set_attention_kernel(AttentionKernel::automatic);
  CHECK_FALSE(m.uses_flash_attention());
}

TEST_CASE("bert on CUDA: f32 within 1e-4 and bf16 compute within 2e-2 of the CPU f32 model",
          "[models][bert][cuda][bf16]") {
  if (test::skip_without_cuda()) return;
  for (int num_labels : {3, 1}) {
    INFO("num_labels " << num_labels);
    BertConfig c = d64_config(num_labels);
    BertForSequenceClassification cpu(c, Device::cpu, DType::f32);
    cpu.init_weights(31);
    perturb(cpu, 9);
    BertForSequenceClassification gpu(c, Device::cuda, DType::f32);
    copy_params(gpu, cpu);
    StepOptions opt{true, 1234, 5, true};
    StepResult ref = train_step(cpu, make_batch(c, 16, Device::cpu, 3), opt);
    const BertBatch gb = make_batch(c, 16, Device::cuda, 3);
    auto names = cpu.params().named();

    REQUIRE(gpu.uses_flash_attention());  // automatic, dense probs, head dim 64
    StepResult f32 = train_step(gpu, gb, opt);
    CHECK(f32.logits.dtype() == DType::f32);
    CHECK(test::rel_l2(f32.logits, ref.logits) <= 1e-4);
    check_grads(f32.grads, ref.grads, names, 1e-4);

    gpu.set_compute_dtype(DType::bf16);
    StepResult bf = train_step(gpu, gb, opt);
    CHECK(gpu.compute_param_bytes() > 0);
    CHECK(bf.logits.dtype() == DType::f32);
    for (const Tensor& g : bf.grads) CHECK(g.dtype() == DType::f32);
    for (const SiteRecord& r : bf.records)
      if (r.site.find("lse") == std::string::npos && r.site.find("mean") == std::string::npos &&
          r.site.find("rstd") == std::string::npos)
        CHECK(r.dtype == DType::bf16);
    const double lerr = test::rel_l2(bf.logits, ref.logits);
    INFO("bf16 logits rel L2 " << lerr);
    CHECK(lerr <= 2e-2);
    CHECK(lerr > 0);  // bf16 really ran
    const double gerr = check_grads(bf.grads, ref.grads, names, 2e-2);
    INFO("bf16 gradients rel L2 " << gerr);
    CHECK(gerr > 0);
    // Master weights untouched by the forward; switching back frees the copies.
    CHECK(test::rel_l2(gpu.params().layers[0].q_w, cpu.params().layers[0].q_w) == 0);
    gpu.set_compute_dtype(DType::f32);
    CHECK(gpu.compute_param_bytes() == 0);
  }
}

TEST_CASE("bert on CUDA: flash and materialized attention give the same gradients",
          "[models][bert][cuda][flash]") {
  if (test::skip_without_cuda()) return;
  BertConfig c = d64_config(3);
  BertForSequenceClassification m(c, Device::cuda, DType::f32);
  m.init_weights(41);
  perturb(m, 13);
  const BertBatch b = make_batch(c, 24, Device::cuda, 4);
  StepOptions opt{true, 99, 1, true};
  auto names = m.params().named();
  for (DType compute : {DType::f32, DType::bf16}) {
    INFO("compute " << dtype_name(compute));
    m.set_compute_dtype(compute);
    m.set_attention_kernel(AttentionKernel::materialized);
    StepResult mat = train_step(m, b, opt);
    m.set_attention_kernel(AttentionKernel::automatic);
    REQUIRE(m.uses_flash_attention());
    StepResult fl = train_step(m, b, opt);
    // bf16: the materialized kernel rounds P to bf16 before P·V, the fused one keeps it in fp32.
    const double tol = compute == DType::f32 ? 1e-5 : 2e-2;
    CHECK(test::rel_l2(fl.logits, mat.logits) <= tol);
    check_grads(fl.grads, mat.grads, names, compute == DType::f32 ? 1e-4 : 2e-2);
    CHECK_FALSE(has_site(fl.records, "layer0.probs"));
    CHECK(fl.tape_peak < mat.tape_peak);
  }
}

TEST_CASE("bert bf16 on CUDA: Back Razor leaves the logits bit-identical", "[models][bert][cuda][bf16]") {
  if (test::skip_without_cuda()) return;
  BertConfig c = d64_config(3);
  BertForSequenceClassification m(c, Device::cuda, DType::f32);
  m.init_weights(51);
  m.set_compute_dtype(DType::bf16);
  m.set_attention_kernel(AttentionKernel::materialized);  // the kernel every preset can use
  const BertBatch b = make_batch(c, 16, Device::cuda, 5);
  StepOptions opt{true, 7, 0, true};
  StepResult dense = train_step(m, b, opt);
  for (const char* preset : {"seed", "all", "balanced"}) {
    INFO(preset);
    m.policy() = BackRazorPolicy::preset(preset, 0.8, DType::f16);
    StepResult br = train_step(m, b, opt);
    CHECK(br.logits.to_vector<float>() == dense.logits.to_vector<float>());
    CHECK(br.tape_peak < dense.tape_peak);
    for (const Tensor& g : br.grads) {
      std::vector<double> v = test::to_doubles(g);
      for (double x : v) REQUIRE(std::isfinite(x));
    }
  }
}

TEST_CASE("bert on CUDA: balanced keeping everything in fp32 reproduces the dense gradients",
          "[models][bert][cuda][backrazor]") {
  if (test::skip_without_cuda()) return;
  BertConfig c = d64_config(3);
  BertForSequenceClassification m(c, Device::cuda, DType::f32);
  m.init_weights(61);
  m.set_attention_kernel(AttentionKernel::materialized);
  const BertBatch b = make_batch(c, 16, Device::cuda, 6);
  StepOptions opt{true, 8, 2, true};
  StepResult dense = train_step(m, b, opt);
  // The FFN2 input is recomputed on the device from the dense GELU input (the same kernel, so the
  // same values); every other site keeps all its values in fp32. Equal up to the reduction order
  // of any atomics in the backward kernels.
  m.policy() = BackRazorPolicy::preset("balanced", 0.0, DType::f32);
  StepResult bal = train_step(m, b, opt);
  REQUIRE(bal.grads.size() == dense.grads.size());
  check_grads(bal.grads, dense.grads, m.params().named(), 1e-6);
  CHECK(bal.tape_peak < dense.tape_peak);  // the FFN2 inputs are not stored
}
