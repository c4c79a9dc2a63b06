#include "models/bert.h"

#include <cmath>
#include <utility>

#include "core/philox.h"
#include "kernels/cast.h"
#include "kernels/loss.h"
#include "models/bert_internal.h"

namespace br {

namespace {

// Every tensor slot of w with its shape, grouped in the order backward finishes them: pooler and
// classifier, then the encoder layers from last to first, then the embeddings.
std::vector<std::vector<std::pair<Tensor*, Shape>>> slots_in_backward_order(BertWeights& w,
                                                                              const BertConfig& c) {
  const int64_t H = c.hidden_size, F = c.intermediate_size;
  w.layers.resize(size_t(c.num_hidden_layers));
  std::vector<std::vector<std::pair<Tensor*, Shape>>> groups;
  groups.push_back({{&w.classifier_w, {c.num_labels(), H}},
                    {&w.classifier_b, {c.num_labels()}},
                    {&w.pooler_w, {H, H}},
                    {&w.pooler_b, {H}}});
  for (int l = c.num_hidden_layers - 1; l >= 0; --l) {
    BertLayerWeights& L = w.layers[size_t(l)];
    groups.push_back({{&L.ln2_w, {H}}, {&L.ln2_b, {H}}, {&L.ffn2_w, {H, F}}, {&L.ffn2_b, {H}},
                      {&L.ffn1_w, {F, H}}, {&L.ffn1_b, {F}}, {&L.ln1_w, {H}}, {&L.ln1_b, {H}},
                      {&L.ao_w, {H, H}}, {&L.ao_b, {H}}, {&L.q_w, {H, H}}, {&L.q_b, {H}},
                      {&L.k_w, {H, H}}, {&L.k_b, {H}}, {&L.v_w, {H, H}}, {&L.v_b, {H}}});
  }
  groups.push_back({{&w.emb_ln_w, {H}},
                    {&w.emb_ln_b, {H}},
                    {&w.word_emb, {c.vocab_size, H}},
                    {&w.pos_emb, {c.max_position_embeddings, H}},
                    {&w.type_emb, {c.type_vocab_size, H}}});
  return groups;
}

}  // namespace

BertWeights BertWeights::allocate(const BertConfig& c, DType dtype, Device device,
                                  MemCategory category) {
  BertWeights w;
  for (auto& group : slots_in_backward_order(w, c))
    for (auto& [slot, shape] : group) *slot = Tensor::zeros(shape, dtype, device, category);
  return w;
}

BertWeights BertWeights::allocate_flat(const BertConfig& c, DType dtype, Device device,
                                       MemCategory category, Tensor* flat,
                                       std::vector<int64_t>* group_offsets) {
  BertWeights w;
  auto groups = slots_in_backward_order(w, c);
  // Each tensor starts a multiple of 256 bytes into the buffer (vector loads; cuBLASLt's preferred
  // alignment on CUDA, where allocations are 256-byte aligned).
  const int64_t align = std::max<int64_t>(1, 256 / int64_t(dtype_size(dtype)));
  auto up = [&](int64_t n) { return (n + align - 1) / align * align; };
  std::vector<int64_t> offsets{0};
  int64_t total = 0;
  for (auto& group : groups) {
    for (auto& [slot, shape] : group) total += up(shape_numel(shape));
    offsets.push_back(total);
  }
  Tensor all = Tensor::zeros({total}, dtype, device, category);
  int64_t off = 0;
  for (auto& group : groups)
    for (auto& [slot, shape] : group) {
      const int64_t n = shape_numel(shape);
      *slot = all.rows(off, off + n).view(shape);
      off += up(n);
    }
  if (flat) *flat = all;
  if (group_offsets) *group_offsets = std::move(offsets);
  return w;
}

std::vector<std::pair<std::string, Tensor>> BertWeights::named() const {
  std::vector<std::pair<std::string, Tensor>> r = {
      {"bert.embeddings.word_embeddings.weight", word_emb},
      {"bert.embeddings.position_embeddings.weight", pos_emb},
      {"bert.embeddings.token_type_embeddings.weight", type_emb},
      {"bert.embeddings.LayerNorm.weight", emb_ln_w},
      {"bert.embeddings.LayerNorm.bias", emb_ln_b},
  };
  for (size_t l = 0; l < layers.size(); ++l) {
    const BertLayerWeights& L = layers[l];
    std::string p = fmt::format("bert.encoder.layer.{}.", l);
    for (auto& [name, t] : std::vector<std::pair<const char*, Tensor>>{
             {"attention.self.query.weight", L.q_w},
             {"attention.self.query.bias", L.q_b},
             {"attention.self.key.weight", L.k_w},
             {"attention.self.key.bias", L.k_b},
             {"attention.self.value.weight", L.v_w},
             {"attention.self.value.bias", L.v_b},
             {"attention.output.dense.weight", L.ao_w},
             {"attention.output.dense.bias", L.ao_b},
             {"attention.output.LayerNorm.weight", L.ln1_w},
             {"attention.output.LayerNorm.bias", L.ln1_b},
             {"intermediate.dense.weight", L.ffn1_w},
             {"intermediate.dense.bias", L.ffn1_b},
             {"output.dense.weight", L.ffn2_w},
             {"output.dense.bias", L.ffn2_b},
             {"output.LayerNorm.weight", L.ln2_w},
             {"output.LayerNorm.bias", L.ln2_b}})
      r.emplace_back(p + name, t);
  }
  r.emplace_back("bert.pooler.dense.weight", pooler_w);
  r.emplace_back("bert.pooler.dense.bias", pooler_b);
  r.emplace_back("classifier.weight", classifier_w);
  r.emplace_back("classifier.bias", classifier_b);
  return r;
}

std::vector<Tensor> BertWeights::all() const {
  std::vector<Tensor> r;
  for (auto& [n, t] : named()) r.push_back(t);
  return r;
}

int64_t BertForSequenceClassification::grad_group_offset(int group) const {
  BR_CHECK(group >= 0 && group <= num_grad_groups(),
           "grad_group_offset: group {} outside [0, {}]", group, num_grad_groups());
  return grad_group_offsets_[size_t(group)];
}

void BertWeights::zero_() const {
  for (const Tensor& t : all()) t.zero_();
}

BertForSequenceClassification::BertForSequenceClassification(BertConfig config, Device device,
                                                             DType dtype)
    : config_(std::move(config)), device_(device), dtype_(dtype), compute_dtype_(dtype) {
  BR_CHECK(dtype == DType::f32 || dtype == DType::f64,
           "BertForSequenceClassification: parameters must be f32 or f64, got {}",
           dtype_name(dtype));
  BR_CHECK(device == Device::cpu || cuda_available(),
           "BertForSequenceClassification: CUDA requested but no CUDA device is available");
  BR_CHECK(config_.num_labels() >= 1, "BertForSequenceClassification: num_labels must be >= 1, got {}",
           config_.num_labels());
  params_ = BertWeights::allocate(config_, dtype, device, MemCategory::parameters);
  grads_ = BertWeights::allocate_flat(config_, dtype, device, MemCategory::gradients, &grads_flat_,
                                      &grad_group_offsets_);
  for (const Tensor& t : {params_.emb_ln_w}) fill(t, 1.0);
  for (const BertLayerWeights& L : params_.layers) {
    fill(L.ln1_w, 1.0);
    fill(L.ln2_w, 1.0);
  }
}

namespace {

// The linear layers' weights and biases of w, in a fixed order: what bf16 compute copies.
template <typename W>  // BertWeights or const BertWeights
std::vector<decltype(&std::declval<W&>().pooler_w)> linear_tensors(W& w) {
  std::vector<decltype(&w.pooler_w)> r;
  for (auto& L : w.layers)
    for (auto* t : {&L.q_w, &L.q_b, &L.k_w, &L.k_b, &L.v_w, &L.v_b, &L.ao_w, &L.ao_b, &L.ffn1_w,
                      &L.ffn1_b, &L.ffn2_w, &L.ffn2_b})
      r.push_back(t);
  for (auto* t : {&w.pooler_w, &w.pooler_b, &w.classifier_w, &w.classifier_b}) r.push_back(t);
  return r;
}

}  // namespace

std::string_view attention_kernel_name(AttentionKernel k) {
  switch (k) {
    case AttentionKernel::automatic: return "auto";
    case AttentionKernel::materialized: return "materialized";
    case AttentionKernel::flash: return "flash";
  }
  return "?";
}

AttentionKernel attention_kernel_from_name(std::string_view name) {
  for (AttentionKernel k :
       {AttentionKernel::automatic, AttentionKernel::materialized, AttentionKernel::flash})
    if (attention_kernel_name(k) == name) return k;
  fail("attention kernel '{}' is not one of auto, materialized, flash", name);
}

void BertForSequenceClassification::set_compute_dtype(DType compute) {
  const char* op = "BertForSequenceClassification::set_compute_dtype";
  if (compute == dtype_) {
    compute_dtype_ = compute;
    compute_params_ = BertWeights();
    return;
  }
  BR_CHECK(compute == DType::bf16, "{}: compute dtype must be the parameter dtype {} or bf16, got {}",
           op, dtype_name(dtype_), dtype_name(compute));
  BR_CHECK(device_ == Device::cuda,
           "{}: bf16 compute needs a CUDA model; the CPU backend computes in the parameter dtype {}",
           op, dtype_name(dtype_));
  BR_CHECK(dtype_ == DType::f32, "{}: bf16 compute needs f32 master parameters, got {}", op,
           dtype_name(dtype_));
  compute_dtype_ = compute;
}

int64_t BertForSequenceClassification::compute_param_bytes() const {
  if (compute_dtype_ == dtype_ || compute_params_.layers.empty()) return 0;
  int64_t n = 0;
  for (const Tensor* t : linear_tensors(compute_params_)) n += int64_t(t->nbytes());
  return n;
}

const BertWeights& BertForSequenceClassification::compute_weights(bool refresh) {
  if (compute_dtype_ == dtype_) return params_;
  if (compute_params_.layers.empty()) {
    compute_params_ = params_;  // handles: embeddings and LayerNorm weights are shared
    for (Tensor* t : linear_tensors(compute_params_))
      *t = Tensor::empty(t->shape(), compute_dtype_, device_, MemCategory::workspace);
    refresh = true;
  }
  if (refresh) {
    std::vector<Tensor*> dst = linear_tensors(compute_params_), src = linear_tensors(params_);
    for (size_t i = 0; i < dst.size(); ++i) cast(*dst[i], *src[i]);
  }
  return compute_params_;
}

bool BertForSequenceClassification::uses_flash_attention() const {
  const bool probs_dense = policy_[Site::probs].mode == SaveMode::dense;
  switch (attention_kernel_) {
    case AttentionKernel::materialized: return false;
    case AttentionKernel::flash:
      BR_CHECK(probs_dense,
               "BertForSequenceClassification: flash attention never forms the probabilities, but "
               "the probs site is stored {} (Back Razor needs P); use the materialized kernel",
               save_mode_name(policy_[Site::probs].mode));
      return true;
    case AttentionKernel::automatic: break;
  }
  const int64_t D = config_.hidden_size / config_.num_attention_heads;
  return device_ == Device::cuda && probs_dense && D == 64;
}

namespace {

// normal(0, std) from Philox: Box-Muller on two uniforms in (0, 1], keyed by (seed, stream, index).
void fill_normal(const Tensor& t, double stddev, uint64_t seed, uint32_t stream) {
  std::vector<double> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); i += 2) {
    Philox4 r = philox4x32_10(Philox4{{uint32_t(i / 2), uint32_t(uint64_t(i / 2) >> 32), stream, 0x1417u}},
                              uint32_t(seed), uint32_t(seed >> 32));
    double u1 = (double(r.v[0]) + 1.0) / 4294967296.0;
    double u2 = double(r.v[1]) / 4294967296.0;
    double rad = std::sqrt(-2.0 * std::log(u1));
    v[i] = stddev * rad * std::cos(2 * M_PI * u2);
    if (i + 1 < v.size()) v[i + 1] = stddev * rad * std::sin(2 * M_PI * u2);
  }
  Tensor host = Tensor::from_host(v, t.shape());
  Tensor conv = Tensor::empty(t.shape(), t.dtype());
  cast(conv, host);
  t.copy_from(conv);
}

}  // namespace

void BertForSequenceClassification::init_weights(uint64_t seed) {
  const double std = config_.initializer_range;
  uint32_t stream = 0;
  for (auto& [name, t] : params_.named()) {
    ++stream;
    bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    bool is_ln = name.find("LayerNorm") != std::string::npos;
    if (is_ln) {
      fill(t, is_bias ? 0.0 : 1.0);
    } else if (is_bias) {
      t.zero_();
    } else {
      fill_normal(t, std, seed, stream);
    }
  }
  const int64_t pad = config_.pad_token_id;
  if (pad >= 0 && pad < config_.vocab_size) params_.word_emb.rows(pad, pad + 1).zero_();
}

void BertForSequenceClassification::init_classifier(uint64_t seed) {
  fill_normal(params_.classifier_w, config_.initializer_range, seed, 0xc1a55u);
  params_.classifier_b.zero_();
}

void BertForSequenceClassification::init_pooler(uint64_t seed) {
  fill_normal(params_.pooler_w, config_.initializer_range, seed, 0x9001u);
  params_.pooler_b.zero_();
}

Tensor BertForSequenceClassification::loss(const Tensor& logits, const Tensor& labels) const {
  // f32 loss, or f64 for an f64 model (gradient checks need the precision).
  Tensor out = Tensor::empty({1}, dtype_ == DType::f64 ? DType::f64 : DType::f32, device_);
  if (config_.num_labels() == 1) {
    Tensor preds = logits.view({logits.size(0)});
    mse_forward(out, preds, labels.dtype() == preds.dtype() ? labels : cast(labels, preds.dtype()));
  } else {
    cross_entropy_forward(out, logits, labels);
  }
  return out;
}

Tensor BertForSequenceClassification::loss_backward(const Tensor& logits, const Tensor& labels,
                                                    float dloss) const {
  Tensor d = Tensor::empty(logits.shape(), logits.dtype(), device_);
  if (config_.num_labels() == 1) {
    Tensor preds = logits.view({logits.size(0)});
    mse_backward(d.view({logits.size(0)}), preds,
                 labels.dtype() == preds.dtype() ? labels : cast(labels, preds.dtype()), dloss);
  } else {
    cross_entropy_backward(d, logits, labels, dloss);
  }
  return d;
}

Tensor stats_tensor(int64_t rows, DType model_dtype, Device device) {
  return Tensor::empty({rows}, model_dtype == DType::f64 ? DType::f64 : DType::f32, device);
}

Tensor position_ids(int64_t B, int64_t S, Device device) {
  std::vector<int32_t> v(size_t(B * S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) v[size_t(b * S + s)] = int32_t(s);
  return Tensor::from_host(v, {B, S}, device);
}

void gather_first_token(const Tensor& out, const Tensor& h) {
  const int64_t B = h.size(0), S = h.size(1), H = h.size(2);
  check_shape("gather_first_token", "out", out, {B, H});
  Tensor rows = h.view({B * S, H});
  for (int64_t b = 0; b < B; ++b) out.rows(b, b + 1).copy_from(rows.rows(b * S, b * S + 1));
}

void scatter_first_token(const Tensor& dh, const Tensor& dout) {
  const int64_t B = dh.size(0), S = dh.size(1), H = dh.size(2);
  check_shape("scatter_first_token", "dout", dout, {B, H});
  Tensor rows = dh.view({B * S, H});
  for (int64_t b = 0; b < B; ++b) rows.rows(b * S, b * S + 1).copy_from(dout.rows(b, b + 1));
}

}  // namespace br
