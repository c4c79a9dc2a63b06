// One BERT step as a composition of its pieces (models/bert_layers.h): embeddings, the encoder
// layers, the head; and backward as the same pieces in reverse, reading the forward's record.
#include <algorithm>
#include <cstdint>
#include <cmath>
#include <limits>

#include "kernels/cast.h"
#include "models/bert.h"

namespace br {

StepContext BertForSequenceClassification::context(const BertBatch& batch,
                                                   const StepOptions& opt) const {
  const BertConfig& c = config_;
  StepContext ctx;
  ctx.B = batch.input_ids.size(0);
  ctx.S = batch.input_ids.size(1);
  ctx.H = c.hidden_size;
  ctx.N = c.num_attention_heads;
  ctx.D = ctx.H / ctx.N;
  ctx.F = c.intermediate_size;
  ctx.act_dtype = compute_dtype_;
  ctx.model_dtype = dtype_;
  ctx.device = device_;
  if (opt.train) {
    ctx.p_hidden = float(c.hidden_dropout_prob);
    ctx.p_attn = opt.attention_dropout ? float(c.attention_probs_dropout_prob) : 0.0f;
    ctx.p_cls = float(c.classifier_dropout.value_or(c.hidden_dropout_prob));
  }
  ctx.scale = float(std::pow(double(ctx.D), -0.5));  // HF: D ** -0.5 in double, applied in fp32
  ctx.eps = c.layer_norm_eps;
  ctx.seed = opt.seed;
  ctx.step = opt.step;
  BR_CHECK(opt.rank_length == 0 || opt.rank_length >= ctx.S,
           "bert forward: rank_length {} is shorter than the batch's length {}", opt.rank_length,
           ctx.S);
  ctx.rank_S = opt.rank_length;
  // The attention dropout's row length: the longest input the model takes, so that a sample's
  // masks are the same however far its batch is padded (a batch split by length trains as the
  // whole one); S where N·L·L would not fit the 32-bit element index.
  const int64_t L = std::max<int64_t>(c.max_position_embeddings, ctx.S);
  if (ctx.N * L * L <= int64_t(UINT32_MAX)) ctx.dropout_length = uint32_t(L);
  ctx.example_ids = batch.example_ids;
  ctx.attention_workspace = attention_workspace_;
  ctx.ffn_workspace = ffn_workspace_;
  return ctx;
}

bool BertForSequenceClassification::ranks_padding() const {
  if (policy_.skip_padding) return false;
  bool any_sparse = policy_.any_sparse();
  for (int l = 0; l < config_.num_hidden_layers; ++l) any_sparse = any_sparse || plan_for(l).policy.any_sparse();
  return any_sparse;
}

Tensor BertForSequenceClassification::additive_mask(const BertBatch& batch,
                                                    bool* has_padding) const {
  const int64_t B = batch.input_ids.size(0), S = batch.input_ids.size(1);
  check_shape("bert forward", "attention_mask", batch.attention_mask, {B, S});
  check_dtype("bert forward", "attention_mask", batch.attention_mask, DType::i32);
  std::vector<int32_t> m = batch.attention_mask.to_vector<int32_t>();
  std::vector<float> add(m.size());
  bool padded = false;
  for (size_t i = 0; i < m.size(); ++i) {
    add[i] = m[i] ? 0.0f : std::numeric_limits<float>::lowest();
    padded = padded || m[i] == 0;
  }
  if (has_padding) *has_padding = padded;
  return Tensor::from_host(add, {B, S}, device_);
}

ForwardResult BertForSequenceClassification::forward(const BertBatch& batch,
                                                     const StepOptions& opt, Tape* tape) {
  const BertConfig& c = config_;
  check_dtype("bert forward", "input_ids", batch.input_ids, DType::i32);
  BR_CHECK(batch.input_ids.dim() == 2, "bert forward: input_ids must be [B,S], got {}",
           batch.input_ids.str());
  const int64_t B = batch.input_ids.size(0), S = batch.input_ids.size(1);
  BR_CHECK(S <= c.max_position_embeddings,
           "bert forward: sequence length {} exceeds max_position_embeddings {}", S,
           c.max_position_embeddings);
  check_shape("bert forward", "token_type_ids", batch.token_type_ids, {B, S});
  BR_CHECK(batch.input_ids.device() == device_, "bert forward: batch on {}, model on {}",
           device_name(batch.input_ids.device()), device_name(device_));
  BR_CHECK(!opt.train || tape, "bert forward: training needs a tape");
  ForwardResult r;
  r.record.policy = policy_;
  bool any_sparse = policy_.any_sparse();
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    LayerPlan plan = plan_for(l);
    any_sparse = any_sparse || plan.policy.any_sparse();
    // The last layer is never checkpointed: its recompute would run right after its forward, so
    // keeping its tape instead holds no more at the step's peak and saves a layer's forward.
    const bool checkpoint = tape && plan.checkpoint && l + 1 < c.num_hidden_layers;
    r.record.layers.push_back(LayerRecord{plan.policy, uses_flash_attention(plan.policy),
                                          checkpoint});
    LayerRecord& rec = r.record.layers.back();
    rec.first_token = l + 1 == c.num_hidden_layers &&
                      (!tape || first_token_trainable(plan.policy, policy_.skip_padding));
    rec.first_token_queries = rec.first_token && tape && !rec.flash && device_ == Device::cpu &&
                              first_token_queries_trainable(plan.policy, policy_.skip_padding);
    // A checkpoint before this one keeps its output where its plan says (LayerPlan).
    if (l > 0 && checkpoint && r.record.layers[size_t(l - 1)].checkpoint)
      r.record.layers[size_t(l - 1)].keeps_output = plan_for(l - 1).keeps_output();
  }
  StepContext ctx = context(batch, opt);
  if (opt.train && (ctx.p_hidden > 0 || ctx.p_attn > 0 || ctx.p_cls > 0))
    check_shape("bert forward", "example_ids", batch.example_ids, {B});
  bool has_padding = false;
  ctx.mask = additive_mask(batch, &has_padding);
  r.record.padding_skipped = tape && has_padding && policy_.skip_padding && any_sparse;
  if (r.record.padding_skipped) ctx.padding = batch.attention_mask.to(device_);
  const BertWeights& P = compute_weights(true);

  Tensor h = embeddings_forward(ctx, P, batch.input_ids, batch.token_type_ids, c, policy_, tape);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const LayerRecord& rec = r.record.layers[size_t(l)];
    // A checkpoint keeps its input (the tape adopts h, which the layer only reads) and saves
    // nothing inside; backward recomputes the layer from it. Layer 0's input is the embeddings'
    // output, which backward recomputes from the token ids instead (three lookups, a LayerNorm);
    // the input of one after a checkpoint that kept its output is that output's LayerNorm. One
    // keeping its output saves its LN2 input and statistics.
    const bool input_kept = l > 0 && !r.record.layers[size_t(l - 1)].keeps_output;
    if (rec.checkpoint && input_kept) tape->save({l, Site::layer_input}, h);
    h = encoder_layer_forward(ctx, l, P.layers[size_t(l)], std::move(h), rec,
                              rec.checkpoint ? nullptr : tape, LayerOutput::whole,
                              rec.keeps_output ? tape : nullptr);
  }
  Tensor logits = head_forward(ctx, P, std::move(h), c.num_labels(), policy_, tape);
  // The loss runs in f32 (or f64) whatever the compute dtype.
  r.logits = logits.dtype() == dtype_ ? logits : cast(logits, dtype_);
  return r;
}

BackwardReport BertForSequenceClassification::backward(const BertBatch& batch,
                                                       const StepOptions& opt, Tape& tape,
                                                       const ForwardRecord& record,
                                                       const Tensor& dlogits,
                                                       const GradReadyHook& on_ready) {
  const BertConfig& c = config_;
  BR_CHECK(opt.train, "bert backward: needs a training forward (StepOptions::train)");
  BR_CHECK(int(record.layers.size()) == c.num_hidden_layers,
           "bert backward: the forward record has {} layers, the model {}", record.layers.size(),
           c.num_hidden_layers);
  StepContext ctx = context(batch, opt);
  check_shape("bert backward", "dlogits", dlogits, {ctx.B, c.num_labels()});
  // The flash backward needs the mask; a recomputed layer needs what its forward had.
  if (record.any_flash() || record.any_checkpoint()) ctx.mask = additive_mask(batch);
  if (record.any_checkpoint() && record.padding_skipped)
    ctx.padding = batch.attention_mask.to(device_);
  BertWeights& g = grads_;
  // The weights the forward computed with (bf16 copies made by that forward, or params_).
  const BertWeights& P = compute_weights(false);
  int group = 0;
  auto ready = [&] {
    if (on_ready) on_ready(group);
    ++group;
  };

  // dlogits come in the loss dtype (f32 for bf16 compute).
  Tensor dh = head_backward(ctx, P, g,
                            dlogits.dtype() == compute_dtype_ ? dlogits : cast(dlogits, compute_dtype_),
                            tape, record.layers.back().first_token);
  ready();  // classifier and pooler
  BackwardReport report;
  report.recompute_peak_bytes.assign(size_t(c.num_hidden_layers), 0);
  report.recompute_dense_bytes.assign(size_t(c.num_hidden_layers), 0);
  for (int l = c.num_hidden_layers - 1; l >= 0; --l) {
    const LayerRecord& rec = record.layers[size_t(l)];
    const BertLayerWeights& w = P.layers[size_t(l)];
    if (rec.checkpoint) {
      // Recompute the layer from its input (same dropout masks: they are keyed by step, site and
      // example), saving under its policy on a tape of its own, then run its backward. One that
      // kept its output runs its LN2 backward first, from the step's tape (which lets go of the
      // output), and its recompute stops at the FFN2 input.
      LayerRecord inner = rec;
      inner.checkpoint = inner.keeps_output = false;
      if (rec.keeps_output)
        dh = encoder_layer_ln2_backward(ctx, l, w, g.layers[size_t(l)], std::move(dh), SitePolicy{},
                                        tape);
      Tape layer_tape(device_);
      Tensor x;
      if (l == 0)
        x = embeddings_forward(ctx, P, batch.input_ids, batch.token_type_ids, c, policy_, nullptr);
      else if (record.layers[size_t(l - 1)].keeps_output)
        x = encoder_layer_output(ctx, P.layers[size_t(l - 1)], tape.peek({l - 1, Site::ln2_input}));
      else
        x = tape.restore({l, Site::layer_input});
      encoder_layer_forward(ctx, l, w, std::move(x), inner, &layer_tape,
                            rec.keeps_output ? LayerOutput::none : LayerOutput::chunks);
      dh = encoder_layer_backward(ctx, l, w, g.layers[size_t(l)], std::move(dh), inner, layer_tape,
                                  /*from_ln2=*/rec.keeps_output);
      report.recompute_peak_bytes[size_t(l)] = layer_tape.peak_bytes();
      for (const SiteRecord& r : layer_tape.records())
        report.recompute_dense_bytes[size_t(l)] += r.dense_bytes;
    } else {
      dh = encoder_layer_backward(ctx, l, w, g.layers[size_t(l)], std::move(dh), rec, tape);
    }
    ready();  // layer l
  }
  embeddings_backward(ctx, P, g, dh, batch.input_ids, batch.token_type_ids, c, tape);
  note_word_rows(batch.input_ids);
  ready();  // embeddings
  return report;
}

}  // namespace br
