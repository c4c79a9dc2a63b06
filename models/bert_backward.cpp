// BERT backward, written out layer by layer in reverse. Every saved activation comes back from the
// tape; under Back Razor it is the pruned reconstruction, which makes weight gradients (and, for
// Q·Kᵀ, P·V and LayerNorm, the input gradients) approximate while the forward stayed exact.
#include <cmath>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/permute.h"
#include "models/bert.h"
#include "models/bert_internal.h"

namespace br {

void BertForSequenceClassification::backward(const BertBatch& batch, const StepOptions& opt,
                                             Tape& tape, const Tensor& dlogits,
                                             const GradReadyHook& on_ready) {
  const BertConfig& c = config_;
  const int64_t B = batch.input_ids.size(0), S = batch.input_ids.size(1);
  const int64_t H = c.hidden_size, N = c.num_attention_heads, D = H / N, F = c.intermediate_size;
  check_shape("bert backward", "dlogits", dlogits, {B, c.num_labels()});
  BR_CHECK(opt.train, "bert backward: needs a training forward (StepOptions::train)");
  const float p_hidden = float(c.hidden_dropout_prob);
  const float p_attn = opt.attention_dropout ? float(c.attention_probs_dropout_prob) : 0.0f;
  const float p_cls = float(c.classifier_dropout.value_or(c.hidden_dropout_prob));
  const float scale = float(std::pow(double(D), -0.5));  // HF: D ** -0.5 in double, applied in fp32
  auto act = [&](const Shape& s) { return Tensor::empty(s, compute_dtype_, device_); };
  auto key = [&](uint32_t site) { return DropoutKey{opt.seed, opt.step, site}; };
  const Tensor& ids = batch.example_ids;
  BertWeights& g = grads_;
  // The weights the forward computed with (bf16 copies made by that forward, or params_).
  const BertWeights& P = compute_weights(false);
  // Which attention kernel the forward ran is read from the tape, not from the current settings.
  const bool flash = c.num_hidden_layers > 0 && tape.has(stats_key(0, "attn_lse"));
  const Tensor mask = flash ? additive_mask(batch) : Tensor();

  // Classifier, dropout, tanh, pooler dense. dlogits come in the loss dtype (f32 for bf16 compute).
  const Tensor dl = dlogits.dtype() == compute_dtype_ ? dlogits : cast(dlogits, compute_dtype_);
  Tensor dpooled_d = act({B, H});
  linear_backward(dpooled_d, g.classifier_w, g.classifier_b, dl,
                  restore(tape, -1, Site::classifier_input), P.classifier_w);
  Tensor dpooled = act({B, H});
  dropout_backward(dpooled, dpooled_d, p_cls, key(kDropClassifier), ids);
  tanh_backward(dpooled, dpooled, tape.restore(stats_key(-1, "pooler_output")));
  Tensor dcls = act({B, H});
  linear_backward(dcls, g.pooler_w, g.pooler_b, dpooled, restore(tape, -1, Site::pooler_input),
                  P.pooler_w);
  Tensor dh = Tensor::zeros({B, S, H}, compute_dtype_, device_);
  scatter_first_token(dh, dcls);
  int group = 0;
  auto ready = [&] {
    if (on_ready) on_ready(group);
    ++group;
  };
  ready();  // classifier and pooler

  for (int l = c.num_hidden_layers - 1; l >= 0; --l) {
    const BertLayerWeights& w = P.layers[size_t(l)];
    BertLayerWeights& gw = g.layers[size_t(l)];
    // LN2 over o + h1: the gradient of the sum flows to both.
    Tensor dx2 = act({B, S, H});
    {
      Tensor mean = tape.restore(stats_key(l, "ln2_mean")), rstd = tape.restore(stats_key(l, "ln2_rstd"));
      layernorm_backward(dx2, gw.ln2_w, gw.ln2_b, dh, restore(tape, l, Site::ln2_input), mean, rstd,
                         w.ln2_w);
    }
    Tensor d_o = act({B, S, H});
    dropout_backward(d_o, dx2, p_hidden, key(dropout_site(l, kDropFfnOut)), ids);
    Tensor dg = act({B, S, F});
    Tensor f;  // the GELU input; restored first when the FFN2 input is rebuilt from it
    if (policy_[Site::ffn2_input].mode == SaveMode::recompute) {
      f = restore(tape, l, Site::gelu_input);
      Tensor g_in = act({B, S, F});
      gelu_forward(g_in, f);
      linear_backward(dg, gw.ffn2_w, gw.ffn2_b, d_o, g_in, w.ffn2_w);
    } else {
      linear_backward(dg, gw.ffn2_w, gw.ffn2_b, d_o, restore(tape, l, Site::ffn2_input), w.ffn2_w);
      f = restore(tape, l, Site::gelu_input);
    }
    d_o = Tensor();
    Tensor df = act({B, S, F});
    gelu_backward(df, dg, f);
    f = Tensor();
    dg = Tensor();
    Tensor dh1 = act({B, S, H});
    linear_backward(dh1, gw.ffn1_w, gw.ffn1_b, df, restore(tape, l, Site::ffn1_input), w.ffn1_w);
    df = Tensor();
    add(dh1, dh1, dx2);
    dx2 = Tensor();

    // LN1 over a + x.
    Tensor dx1 = act({B, S, H});
    {
      Tensor mean = tape.restore(stats_key(l, "ln1_mean")), rstd = tape.restore(stats_key(l, "ln1_rstd"));
      layernorm_backward(dx1, gw.ln1_w, gw.ln1_b, dh1, restore(tape, l, Site::ln1_input), mean, rstd,
                         w.ln1_w);
    }
    dh1 = Tensor();
    Tensor da = act({B, S, H});
    dropout_backward(da, dx1, p_hidden, key(dropout_site(l, kDropAttnOut)), ids);
    Tensor dctx = act({B, S, H});
    Tensor out_h;  // flash: the attention output [B,N,S,D] its backward needs
    {
      Tensor ctx = restore(tape, l, Site::attn_out_input);
      linear_backward(dctx, gw.ao_w, gw.ao_b, da, ctx, w.ao_w);
      if (flash && tape.has(stats_key(l, "attn_out"))) {
        out_h = tape.restore(stats_key(l, "attn_out"));
      } else if (flash) {  // the attention-output dense input was saved dense: it is the output
        out_h = act({B, N, S, D});
        split_heads(out_h, ctx, N);
      }
    }
    da = Tensor();
    Tensor dctx_h = act({B, N, S, D});
    split_heads(dctx_h, dctx, N);
    dctx = Tensor();
    Tensor dq = act({B, N, S, D}), dk = act({B, N, S, D}), dv = act({B, N, S, D});
    {
      Tensor v = restore(tape, l, Site::v);
      Tensor k = restore(tape, l, Site::k), q = restore(tape, l, Site::q);
      if (flash) {
        Tensor lse = tape.restore(stats_key(l, "attn_lse"));
        flash_attention_backward(dq, dk, dv, dctx_h, q, k, v, out_h, lse, mask, scale, p_attn,
                                 key(dropout_site(l, kDropAttention)), ids);
      } else {
        Tensor probs = restore(tape, l, Site::probs);
        attention_backward(dq, dk, dv, dctx_h, q, k, v, probs, scale, p_attn,
                           key(dropout_site(l, kDropAttention)), ids);
      }
    }
    out_h = dctx_h = Tensor();
    // Q, K and V read the same input: dx = Σ dproj·W (exact), weight grads from the saved x.
    Tensor x = restore(tape, l, Site::attn_input);
    Tensor dproj = act({B, S, H}), dxp = act({B, S, H});
    dh = dx1;  // residual path
    merge_heads(dproj, dq);
    linear_backward(dxp, gw.q_w, gw.q_b, dproj, x, w.q_w);
    add(dh, dh, dxp);
    merge_heads(dproj, dk);
    linear_backward(dxp, gw.k_w, gw.k_b, dproj, x, w.k_w);
    add(dh, dh, dxp);
    merge_heads(dproj, dv);
    linear_backward(dxp, gw.v_w, gw.v_b, dproj, x, w.v_w);
    add(dh, dh, dxp);
    ready();  // layer l
  }

  // Embeddings: dropout, LayerNorm, then the three lookups.
  Tensor dln = act({B, S, H});
  dropout_backward(dln, dh, p_hidden, key(kDropEmbeddings), ids);
  Tensor demb = act({B, S, H});
  {
    Tensor mean = tape.restore(stats_key(-1, "emb_ln_mean")), rstd = tape.restore(stats_key(-1, "emb_ln_rstd"));
    layernorm_backward(demb, g.emb_ln_w, g.emb_ln_b, dln, restore(tape, -1, Site::emb_ln_input),
                       mean, rstd, P.emb_ln_w);
  }
  embedding_backward(g.word_emb, demb, batch.input_ids);
  // nn.Embedding(padding_idx=pad_token_id): the padding row never receives a gradient.
  if (c.pad_token_id >= 0 && c.pad_token_id < c.vocab_size)
    g.word_emb.rows(c.pad_token_id, c.pad_token_id + 1).zero_();
  embedding_backward(g.pos_emb, demb, position_ids(B, S, device_));
  embedding_backward(g.type_emb, demb, batch.token_type_ids);
  ready();  // embeddings
}

}  // namespace br
