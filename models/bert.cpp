#include "models/bert.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/philox.h"
#include "kernels/cast.h"
#include "kernels/gemm.h"
#include "kernels/loss.h"

namespace br {

namespace {

// The one parameter table (as llm.c's parameter-size table): every parameter once, in Hugging
// Face state_dict order, with its shape, how HF initialises it, whether bf16 compute copies it (the
// linear layers), and its place in the flat gradient buffer, which is laid out in the order
// backward finishes the parameters (allocate_flat). Struct fields, HF names, shapes, the bf16
// subset, initialisation and gradient layout all read this table.
enum class Dim : uint8_t { one, H, F, V, P, T, C };
enum class Init : uint8_t { normal, zero, one };
enum class Group : uint8_t { embeddings, layer, head };  // where a parameter sits in the model

struct ParamSpec {
  const char* hf_name;     // a layer parameter's name follows "bert.encoder.layer.{l}."
  Tensor BertWeights::*model_member;      // Group::embeddings and Group::head
  Tensor BertLayerWeights::*layer_member;  // Group::layer
  Group group;
  Dim rows, cols;  // cols == Dim::one: a vector of `rows`
  Init init;
  bool linear;        // a linear layer's weight or bias: bf16 compute works on a bf16 copy
  int backward_rank;  // order within its gradient group
};

using W = BertWeights;
using L = BertLayerWeights;
constexpr Tensor W::*kNoModel = nullptr;
constexpr Tensor L::*kNoLayer = nullptr;
// clang-format off
constexpr ParamSpec kParams[] = {
  {"bert.embeddings.word_embeddings.weight",       &W::word_emb,     kNoLayer, Group::embeddings, Dim::V, Dim::H,   Init::normal, false, 2},
  {"bert.embeddings.position_embeddings.weight",   &W::pos_emb,      kNoLayer, Group::embeddings, Dim::P, Dim::H,   Init::normal, false, 3},
  {"bert.embeddings.token_type_embeddings.weight", &W::type_emb,     kNoLayer, Group::embeddings, Dim::T, Dim::H,   Init::normal, false, 4},
  {"bert.embeddings.LayerNorm.weight",             &W::emb_ln_w,     kNoLayer, Group::embeddings, Dim::H, Dim::one, Init::one,    false, 0},
  {"bert.embeddings.LayerNorm.bias",               &W::emb_ln_b,     kNoLayer, Group::embeddings, Dim::H, Dim::one, Init::zero,   false, 1},
  {"attention.self.query.weight",       kNoModel, &L::q_w,    Group::layer, Dim::H, Dim::H,   Init::normal, true,  10},
  {"attention.self.query.bias",         kNoModel, &L::q_b,    Group::layer, Dim::H, Dim::one, Init::zero,   true,  11},
  {"attention.self.key.weight",         kNoModel, &L::k_w,    Group::layer, Dim::H, Dim::H,   Init::normal, true,  12},
  {"attention.self.key.bias",           kNoModel, &L::k_b,    Group::layer, Dim::H, Dim::one, Init::zero,   true,  13},
  {"attention.self.value.weight",       kNoModel, &L::v_w,    Group::layer, Dim::H, Dim::H,   Init::normal, true,  14},
  {"attention.self.value.bias",         kNoModel, &L::v_b,    Group::layer, Dim::H, Dim::one, Init::zero,   true,  15},
  {"attention.output.dense.weight",     kNoModel, &L::ao_w,   Group::layer, Dim::H, Dim::H,   Init::normal, true,  8},
  {"attention.output.dense.bias",       kNoModel, &L::ao_b,   Group::layer, Dim::H, Dim::one, Init::zero,   true,  9},
  {"attention.output.LayerNorm.weight", kNoModel, &L::ln1_w,  Group::layer, Dim::H, Dim::one, Init::one,    false, 6},
  {"attention.output.LayerNorm.bias",   kNoModel, &L::ln1_b,  Group::layer, Dim::H, Dim::one, Init::zero,   false, 7},
  {"intermediate.dense.weight",         kNoModel, &L::ffn1_w, Group::layer, Dim::F, Dim::H,   Init::normal, true,  4},
  {"intermediate.dense.bias",           kNoModel, &L::ffn1_b, Group::layer, Dim::F, Dim::one, Init::zero,   true,  5},
  {"output.dense.weight",               kNoModel, &L::ffn2_w, Group::layer, Dim::H, Dim::F,   Init::normal, true,  2},
  {"output.dense.bias",                 kNoModel, &L::ffn2_b, Group::layer, Dim::H, Dim::one, Init::zero,   true,  3},
  {"output.LayerNorm.weight",           kNoModel, &L::ln2_w,  Group::layer, Dim::H, Dim::one, Init::one,    false, 0},
  {"output.LayerNorm.bias",             kNoModel, &L::ln2_b,  Group::layer, Dim::H, Dim::one, Init::zero,   false, 1},
  {"bert.pooler.dense.weight", &W::pooler_w,     kNoLayer, Group::head, Dim::H, Dim::H,   Init::normal, true, 2},
  {"bert.pooler.dense.bias",   &W::pooler_b,     kNoLayer, Group::head, Dim::H, Dim::one, Init::zero,   true, 3},
  {"classifier.weight",        &W::classifier_w, kNoLayer, Group::head, Dim::C, Dim::H,   Init::normal, true, 0},
  {"classifier.bias",          &W::classifier_b, kNoLayer, Group::head, Dim::C, Dim::one, Init::zero,   true, 1},
};
// clang-format on

int64_t dim_size(Dim d, const BertConfig& c) {
  switch (d) {
    case Dim::one: return 1;
    case Dim::H: return c.hidden_size;
    case Dim::F: return c.intermediate_size;
    case Dim::V: return c.vocab_size;
    case Dim::P: return c.max_position_embeddings;
    case Dim::T: return c.type_vocab_size;
    case Dim::C: return c.num_labels();
  }
  return 0;
}

Shape param_shape(const ParamSpec& p, const BertConfig& c) {
  if (p.cols == Dim::one) return {dim_size(p.rows, c)};
  return {dim_size(p.rows, c), dim_size(p.cols, c)};
}

// A parameter of w: the table row, its layer (-1 outside the encoder) and its tensor slot.
template <typename Weights>  // BertWeights or const BertWeights
struct ParamSlot {
  const ParamSpec* spec;
  int layer;
  decltype(&std::declval<Weights&>().pooler_w) tensor;
};

// Every parameter slot of w in Hugging Face state_dict order: embeddings, layers, pooler,
// classifier.
template <typename Weights>
std::vector<ParamSlot<Weights>> param_slots(Weights& w) {
  std::vector<ParamSlot<Weights>> r;
  auto model_group = [&](Group g) {
    for (const ParamSpec& p : kParams)
      if (p.group == g) r.push_back({&p, -1, &(w.*p.model_member)});
  };
  model_group(Group::embeddings);
  for (size_t l = 0; l < w.layers.size(); ++l)
    for (const ParamSpec& p : kParams)
      if (p.group == Group::layer) r.push_back({&p, int(l), &(w.layers[l].*p.layer_member)});
  model_group(Group::head);
  return r;
}

// The slots grouped in the order backward finishes them: pooler and classifier, then the encoder
// layers from last to first, then the embeddings; within a group by backward_rank.
std::vector<std::vector<ParamSlot<BertWeights>>> slots_in_backward_order(BertWeights& w,
                                                                        const BertConfig& c) {
  w.layers.resize(size_t(c.num_hidden_layers));
  std::vector<std::vector<ParamSlot<BertWeights>>> groups(size_t(c.num_hidden_layers) + 2);
  auto group_of = [&](const ParamSlot<BertWeights>& s) -> size_t {
    if (s.spec->group == Group::head) return 0;
    if (s.spec->group == Group::layer) return size_t(c.num_hidden_layers - s.layer);
    return groups.size() - 1;
  };
  for (const auto& s : param_slots(w)) groups[group_of(s)].push_back(s);
  for (auto& g : groups)
    std::stable_sort(g.begin(), g.end(), [](const auto& a, const auto& b) {
      return a.spec->backward_rank < b.spec->backward_rank;
    });
  return groups;
}

}  // namespace

BertWeights BertWeights::allocate(const BertConfig& c, DType dtype, Device device,
                                  MemCategory category) {
  BertWeights w;
  for (auto& group : slots_in_backward_order(w, c))
    for (auto& s : group) *s.tensor = Tensor::zeros(param_shape(*s.spec, c), dtype, device, category);
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
    for (auto& s : group) total += up(shape_numel(param_shape(*s.spec, c)));
    offsets.push_back(total);
  }
  Tensor all = Tensor::zeros({total}, dtype, device, category);
  int64_t off = 0;
  for (auto& group : groups)
    for (auto& s : group) {
      const Shape shape = param_shape(*s.spec, c);
      const int64_t n = shape_numel(shape);
      *s.tensor = all.rows(off, off + n).view(shape);
      off += up(n);
    }
  if (flat) *flat = all;
  if (group_offsets) *group_offsets = std::move(offsets);
  return w;
}

std::vector<std::pair<std::string, Tensor>> BertWeights::named() const {
  std::vector<std::pair<std::string, Tensor>> r;
  for (const auto& s : param_slots(*this))
    r.emplace_back(s.layer < 0 ? std::string(s.spec->hf_name)
                               : fmt::format("bert.encoder.layer.{}.{}", s.layer, s.spec->hf_name),
                   *s.tensor);
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

void BertForSequenceClassification::note_word_rows(const Tensor& input_ids) {
  DirtyRows& d = word_rows_;
  if (d.all) return;
  if (device_ != Device::cpu || input_ids.device() != Device::cpu) {
    d.all = true;
    return;
  }
  const int64_t V = config_.vocab_size;
  d.seen.resize(size_t(V), 0);
  const int32_t* ids = input_ids.data<int32_t>();
  for (int64_t i = 0, n = input_ids.numel(); i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= V) {  // embedding_backward has rejected it already; stay exact regardless
      d.all = true;
      return;
    }
    if (!d.seen[size_t(id)]) {
      d.seen[size_t(id)] = 1;
      d.rows.push_back(id);
    }
  }
  // Past a quarter of the table, one memset of all of it is as cheap as row by row.
  if (int64_t(d.rows.size()) * 4 > V) d.all = true;
}

void BertForSequenceClassification::zero_grad() {
  DirtyRows& d = word_rows_;
  const Tensor& w = grads_.word_emb;
  // Everything but the word embedding's gradient, as the two ranges of the flat buffer around it
  // (one fill each, on both cores: bert-base holds 86M elements there).
  const int64_t es = int64_t(dtype_size(dtype_));
  const int64_t w0 =
      (static_cast<const char*>(w.raw()) - static_cast<const char*>(grads_flat_.raw())) / es;
  fill(grads_flat_.rows(0, w0), 0.0);
  fill(grads_flat_.rows(w0 + w.numel(), grads_flat_.numel()), 0.0);
  if (d.all) {
    fill(w, 0.0);
  } else {
    for (int32_t r : d.rows) w.rows(r, r + 1).zero_();
  }
  for (int32_t r : d.rows) d.seen[size_t(r)] = 0;
  d.rows.clear();
  d.all = device_ != Device::cpu;
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
  for (const auto& s : param_slots(params_))
    if (s.spec->init == Init::one) fill(*s.tensor, 1.0);
}

namespace {

// The linear layers' weights and biases of w, in table order: what bf16 compute copies.
template <typename Weights>
std::vector<decltype(&std::declval<Weights&>().pooler_w)> linear_tensors(Weights& w) {
  std::vector<decltype(&w.pooler_w)> r;
  for (const auto& s : param_slots(w))
    if (s.spec->linear) r.push_back(s.tensor);
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
  int64_t n = 0;
  if (compute_params_.layers.empty()) return n;
  for (const Tensor* t : linear_tensors(compute_params_))
    if (t->dtype() != dtype_) n += int64_t(t->nbytes());
  return n;
}

const BertWeights& BertForSequenceClassification::compute_weights(bool refresh) {
  // The CPU's bf16 product mode (set_cpu_bf16_matmul, `--bf16 --device cpu`) rounds both operands
  // of every f32 product to bf16: the linear weights are rounded here once per forward, into bf16
  // copies the products take as they are, instead of once per product (forward and dinp), with
  // the same bits. Biases, activations and everything else stay f32.
  const bool cpu_bf16 = device_ == Device::cpu && dtype_ == DType::f32 && cpu_bf16_matmul();
  if (compute_dtype_ == dtype_ && !cpu_bf16) {
    compute_params_ = BertWeights();  // the mode was turned off: no stale copies
    return params_;
  }
  if (compute_params_.layers.empty()) {
    compute_params_ = params_;  // handles: embeddings and LayerNorm weights are shared
    for (Tensor* t : linear_tensors(compute_params_))
      if (!cpu_bf16 || t->dim() == 2)
        *t = Tensor::empty(t->shape(), DType::bf16, device_, MemCategory::workspace);
    refresh = true;
  }
  if (refresh) {
    std::vector<Tensor*> dst = linear_tensors(compute_params_), src = linear_tensors(params_);
    for (size_t i = 0; i < dst.size(); ++i)
      if (dst[i]->dtype() != src[i]->dtype()) cast(*dst[i], *src[i]);
  }
  return compute_params_;
}

bool BertForSequenceClassification::uses_flash_attention() const {
  return uses_flash_attention(policy_);
}

bool BertForSequenceClassification::uses_flash_attention(const BackRazorPolicy& policy) const {
  const bool probs_dense = policy[Site::probs].mode == SaveMode::dense;
  switch (attention_kernel_) {
    case AttentionKernel::materialized: return false;
    case AttentionKernel::flash:
      BR_CHECK(probs_dense,
               "BertForSequenceClassification: flash attention never forms the probabilities, but "
               "the probs site is stored {} (Back Razor needs P); use the materialized kernel",
               save_mode_name(policy[Site::probs].mode));
      return true;
    case AttentionKernel::automatic: break;
  }
  const int64_t D = config_.hidden_size / config_.num_attention_heads;
  return device_ == Device::cuda && probs_dense && D == 64;
}

LayerPlan BertForSequenceClassification::plan_for(int layer) const {
  if (layer_plans_.empty()) return LayerPlan{policy_, gradient_checkpointing_};
  BR_CHECK(int(layer_plans_.size()) == config_.num_hidden_layers,
           "BertForSequenceClassification: {} layer plans for {} encoder layers", layer_plans_.size(),
           config_.num_hidden_layers);
  return layer_plans_.at(size_t(layer));
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
  uint32_t stream = 0;  // one Philox stream per parameter, numbered in state_dict order from 1
  for (const auto& s : param_slots(params_)) {
    ++stream;
    switch (s.spec->init) {
      case Init::one: fill(*s.tensor, 1.0); break;
      case Init::zero: s.tensor->zero_(); break;
      case Init::normal: fill_normal(*s.tensor, std, seed, stream); break;
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

}  // namespace br
