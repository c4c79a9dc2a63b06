// BERT forward (Hugging Face BertForSequenceClassification, post-LN), saving to the tape.
#include <cmath>
#include <limits>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/dropout.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/padding.h"
#include "kernels/permute.h"
#include "models/bert.h"
#include "models/bert_internal.h"

namespace br {

std::string site_key(int layer, Site site) {
  if (layer < 0) return std::string(site_name(site));
  return fmt::format("layer{}.{}", layer, site_name(site));
}

void BertForSequenceClassification::save(Tape& tape, int layer, Site site, const Tensor& x,
                                         const Tensor& padding) {
  const SitePolicy& sp = policy_[site];
  // Top-k among real tokens only: padding rows hold no gradient (docs/BACKRAZOR.md). x is dead in
  // forward once saved, so it is zeroed in place just before the tape packs it.
  if (sp.mode == SaveMode::sparse && padding.defined() && x.dim() >= 3)
    zero_padding_rows(x, padding);
  tape.save(site_key(layer, site), x, sp);
}

Tensor BertForSequenceClassification::restore(Tape& tape, int layer, Site site) {
  return tape.restore(site_key(layer, site));
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

Tensor BertForSequenceClassification::forward(const BertBatch& batch, const StepOptions& opt,
                                              Tape* tape) {
  const BertConfig& c = config_;
  check_dtype("bert forward", "input_ids", batch.input_ids, DType::i32);
  BR_CHECK(batch.input_ids.dim() == 2, "bert forward: input_ids must be [B,S], got {}",
           batch.input_ids.str());
  const int64_t B = batch.input_ids.size(0), S = batch.input_ids.size(1);
  const int64_t H = c.hidden_size, N = c.num_attention_heads, D = H / N, F = c.intermediate_size;
  BR_CHECK(S <= c.max_position_embeddings,
           "bert forward: sequence length {} exceeds max_position_embeddings {}", S,
           c.max_position_embeddings);
  check_shape("bert forward", "token_type_ids", batch.token_type_ids, {B, S});
  BR_CHECK(batch.input_ids.device() == device_, "bert forward: batch on {}, model on {}",
           device_name(batch.input_ids.device()), device_name(device_));
  const bool train = opt.train;
  BR_CHECK(!train || tape, "bert forward: training needs a tape");
  const float p_hidden = train ? float(c.hidden_dropout_prob) : 0.0f;
  const float p_attn = train && opt.attention_dropout ? float(c.attention_probs_dropout_prob) : 0.0f;
  const float p_cls = train ? float(c.classifier_dropout.value_or(c.hidden_dropout_prob)) : 0.0f;
  const float scale = float(std::pow(double(D), -0.5));  // HF: D ** -0.5 in double, applied in fp32
  auto act = [&](const Shape& s) { return Tensor::empty(s, compute_dtype_, device_); };
  auto key = [&](uint32_t site) { return DropoutKey{opt.seed, opt.step, site}; };
  const Tensor& ids = batch.example_ids;
  const bool flash = uses_flash_attention();
  const bool out_from_ctx = policy_[Site::attn_out_input].mode == SaveMode::dense;
  const BertWeights& P = compute_weights(true);
  if (train && (p_hidden > 0 || p_attn > 0 || p_cls > 0))
    check_shape("bert forward", "example_ids", ids, {B});

  bool has_padding = false;
  const Tensor mask = additive_mask(batch, &has_padding);
  // Where sparse sites should skip padding: the token mask on the model's device, else undefined.
  const Tensor padding = tape && has_padding && policy_.skip_padding && policy_.any_sparse()
                             ? batch.attention_mask.to(device_)
                             : Tensor();
  // Embeddings: word + position + token type, LayerNorm, dropout.
  Tensor emb = act({B, S, H});
  embedding_forward(emb, batch.input_ids, P.word_emb, false);
  embedding_forward(emb, position_ids(B, S, device_), P.pos_emb, true);
  embedding_forward(emb, batch.token_type_ids, P.type_emb, true);
  Tensor h = act({B, S, H});
  {
    Tensor mean = stats_tensor(B * S, dtype_, device_), rstd = stats_tensor(B * S, dtype_, device_);
    Tensor ln = act({B, S, H});
    layernorm_forward(ln, mean, rstd, emb, Tensor(), P.emb_ln_w, P.emb_ln_b,
                      c.layer_norm_eps, Tensor());
    dropout_forward(h, ln, p_hidden, key(kDropEmbeddings), ids);
    if (tape) {
      save(*tape, -1, Site::emb_ln_input, emb, padding);
      tape->save(stats_key(-1, "emb_ln_mean"), mean);
      tape->save(stats_key(-1, "emb_ln_rstd"), rstd);
    }
  }

  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const BertLayerWeights& w = P.layers[size_t(l)];
    Tensor x = std::move(h);  // layer input [B,S,H]; the tape adopts it when saved
    // Self-attention.
    Tensor q = act({B, N, S, D}), k = act({B, N, S, D}), v = act({B, N, S, D});
    {
      Tensor t = act({B, S, H});
      linear_forward(t, x, w.q_w, w.q_b);
      split_heads(q, t, N);
      linear_forward(t, x, w.k_w, w.k_b);
      split_heads(k, t, N);
      linear_forward(t, x, w.v_w, w.v_b);
      split_heads(v, t, N);
    }
    Tensor ctx_h = act({B, N, S, D});
    Tensor probs, lse;
    if (flash) {
      lse = Tensor::empty({B, N, S}, DType::f32, device_);
      flash_attention_forward(ctx_h, lse, q, k, v, mask, scale, p_attn,
                              key(dropout_site(l, kDropAttention)), ids);
    } else {
      probs = act({B, N, S, S});
      attention_forward(ctx_h, probs, q, k, v, mask, scale, p_attn,
                        key(dropout_site(l, kDropAttention)), ids);
    }
    Tensor ctx = act({B, S, H});
    merge_heads(ctx, ctx_h);
    if (!flash || !tape || out_from_ctx) ctx_h = Tensor();
    Tensor a = act({B, S, H});
    linear_forward(a, ctx, w.ao_w, w.ao_b);
    dropout_forward(a, a, p_hidden, key(dropout_site(l, kDropAttnOut)), ids);
    Tensor x1 = act({B, S, H}), h1 = act({B, S, H});
    Tensor mean1 = stats_tensor(B * S, dtype_, device_), rstd1 = stats_tensor(B * S, dtype_, device_);
    layernorm_forward(h1, mean1, rstd1, a, x, w.ln1_w, w.ln1_b, c.layer_norm_eps, x1);
    a = Tensor();
    if (tape) {
      save(*tape, l, Site::attn_input, x, padding);
      save(*tape, l, Site::q, q, padding);
      save(*tape, l, Site::k, k, padding);
      if (flash) {
        tape->save(stats_key(l, "attn_lse"), lse);
        if (!out_from_ctx) tape->save(stats_key(l, "attn_out"), ctx_h);
      } else {
        save(*tape, l, Site::probs, probs, padding);
      }
      save(*tape, l, Site::v, v, padding);
      save(*tape, l, Site::attn_out_input, ctx, padding);
      save(*tape, l, Site::ln1_input, x1, padding);
      tape->save(stats_key(l, "ln1_mean"), mean1);
      tape->save(stats_key(l, "ln1_rstd"), rstd1);
    }
    q = k = v = probs = lse = ctx_h = ctx = x1 = Tensor();
    // Feed-forward.
    Tensor f = act({B, S, F}), g = act({B, S, F});
    linear_forward(f, h1, w.ffn1_w, w.ffn1_b);
    gelu_forward(g, f);
    Tensor o = act({B, S, H});
    linear_forward(o, g, w.ffn2_w, w.ffn2_b);
    dropout_forward(o, o, p_hidden, key(dropout_site(l, kDropFfnOut)), ids);
    Tensor x2 = act({B, S, H}), h2 = act({B, S, H});
    Tensor mean2 = stats_tensor(B * S, dtype_, device_), rstd2 = stats_tensor(B * S, dtype_, device_);
    layernorm_forward(h2, mean2, rstd2, o, h1, w.ln2_w, w.ln2_b, c.layer_norm_eps, x2);
    if (tape) {
      save(*tape, l, Site::ffn1_input, h1, padding);
      save(*tape, l, Site::gelu_input, f, padding);
      save(*tape, l, Site::ffn2_input, g, padding);
      save(*tape, l, Site::ln2_input, x2, padding);
      tape->save(stats_key(l, "ln2_mean"), mean2);
      tape->save(stats_key(l, "ln2_rstd"), rstd2);
    }
    h = std::move(h2);
  }

  // Pooler: tanh(dense(h[:,0])), dropout, classifier.
  Tensor cls = act({B, H});
  gather_first_token(cls, h);
  h = Tensor();
  Tensor pooled = act({B, H});
  linear_forward(pooled, cls, P.pooler_w, P.pooler_b);
  tanh_forward(pooled, pooled);
  Tensor pooled_d = act({B, H});
  dropout_forward(pooled_d, pooled, p_cls, key(kDropClassifier), ids);
  Tensor logits = act({B, c.num_labels()});
  linear_forward(logits, pooled_d, P.classifier_w, P.classifier_b);
  if (tape) {
    save(*tape, -1, Site::pooler_input, cls, padding);
    tape->save(stats_key(-1, "pooler_output"), pooled);
    save(*tape, -1, Site::classifier_input, pooled_d, padding);
  }
  // The loss runs in f32 (or f64) whatever the compute dtype.
  return logits.dtype() == dtype_ ? logits : cast(logits, dtype_);
}

}  // namespace br
