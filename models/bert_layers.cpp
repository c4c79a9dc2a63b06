// BERT's pieces, forward beside backward (Hugging Face BertForSequenceClassification, post-LN).
// Every saved activation comes back from the tape; under Back Razor it is the pruned
// reconstruction, which makes weight gradients (and, for Q·Kᵀ, P·V and LayerNorm, the input
// gradients) approximate while the forward stays exact.
#include "models/bert_layers.h"

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/padding.h"
#include "kernels/permute.h"
#include "models/bert.h"

namespace br {

Tensor StepContext::stats() const {
  return Tensor::empty({B * S}, model_dtype == DType::f64 ? DType::f64 : DType::f32, device);
}

void save_site(Tape& tape, const StepContext& ctx, int layer, Site site, const Tensor& x,
               const SitePolicy& policy) {
  // x is dead in forward once saved, so its padding rows are zeroed in place just before packing.
  if (policy.mode == SaveMode::sparse && ctx.padding.defined() && x.dim() >= 3)
    zero_padding_rows(x, ctx.padding);
  tape.save({layer, site}, x, policy);
}

// ---- embeddings ----

Tensor embeddings_forward(const StepContext& ctx, const BertWeights& P, const Tensor& input_ids,
                          const Tensor& token_type_ids, const BertConfig& c,
                          const BackRazorPolicy& policy, Tape* tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H;
  Tensor emb = ctx.act({B, S, H});
  embedding_forward(emb, input_ids, P.word_emb, false);
  embedding_forward(emb, position_ids(B, S, ctx.device), P.pos_emb, true);
  embedding_forward(emb, token_type_ids, P.type_emb, true);
  Tensor h = ctx.act({B, S, H});
  Tensor mean = ctx.stats(), rstd = ctx.stats();
  {
    Tensor ln = ctx.act({B, S, H});
    layernorm_forward(ln, mean, rstd, emb, Tensor(), P.emb_ln_w, P.emb_ln_b, c.layer_norm_eps,
                      Tensor());
    dropout_forward(h, ln, ctx.p_hidden, ctx.key(kDropEmbeddings), ctx.example_ids);
  }
  if (tape) {
    save_site(*tape, ctx, -1, Site::emb_ln_input, emb, policy[Site::emb_ln_input]);
    tape->save({-1, Site::emb_ln_mean}, mean);
    tape->save({-1, Site::emb_ln_rstd}, rstd);
  }
  return h;
}

void embeddings_backward(const StepContext& ctx, const BertWeights& P, BertWeights& g,
                         const Tensor& dh, const Tensor& input_ids, const Tensor& token_type_ids,
                         const BertConfig& c, Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H;
  Tensor demb = ctx.act({B, S, H});
  {
    Tensor dln = ctx.act({B, S, H});
    dropout_backward(dln, dh, ctx.p_hidden, ctx.key(kDropEmbeddings), ctx.example_ids);
    Tensor mean = tape.restore({-1, Site::emb_ln_mean}), rstd = tape.restore({-1, Site::emb_ln_rstd});
    layernorm_backward(demb, g.emb_ln_w, g.emb_ln_b, dln, tape.restore({-1, Site::emb_ln_input}),
                       mean, rstd, P.emb_ln_w);
  }
  embedding_backward(g.word_emb, demb, input_ids);
  // nn.Embedding(padding_idx=pad_token_id): the padding row never receives a gradient.
  if (c.pad_token_id >= 0 && c.pad_token_id < c.vocab_size)
    g.word_emb.rows(c.pad_token_id, c.pad_token_id + 1).zero_();
  embedding_backward(g.pos_emb, demb, position_ids(B, S, ctx.device));
  embedding_backward(g.type_emb, demb, token_type_ids);
}

// ---- encoder layer: self-attention block ----

namespace {

// Samples [b0, b1) of an optional per-sample tensor (the mask, the example ids).
Tensor sample_rows(const Tensor& t, int64_t b0, int64_t b1) {
  return t.defined() ? t.rows(b0, b1) : Tensor();
}

// The first n samples of a chunk buffer (the last chunk of a batch may be short).
Tensor leading(const Tensor& t, int64_t n) { return t.size(0) == n ? t : t.rows(0, n); }

// A saved site read by chunks of samples: a copy the tape keeps (sparse, low precision) is
// reconstructed chunk by chunk into a buffer of `cb` samples and released at the end; a tensor the
// tape keeps as is comes back whole and is read through views.
class SampleRows {
 public:
  SampleRows(const StepContext& ctx, Tape& tape, TapeKey key, const SitePolicy& policy,
             const Shape& sample_shape, int64_t cb)
      : tape_(tape), key_(key) {
    if (Tape::rows_chunkable(policy, ctx.act_dtype)) {
      Shape s = sample_shape;
      s.insert(s.begin(), cb);
      buf_ = ctx.act(s);
    } else {
      whole_ = tape.restore(key);
    }
  }
  SampleRows(const SampleRows&) = delete;
  SampleRows& operator=(const SampleRows&) = delete;
  ~SampleRows() {
    if (buf_.defined()) tape_.release(key_);
  }
  // Samples [b0, b1) of the dense reconstruction; valid until the next call.
  Tensor rows(int64_t b0, int64_t b1) {
    if (whole_.defined()) return whole_.rows(b0, b1);
    const Tensor out = b1 - b0 == buf_.size(0) ? buf_ : buf_.rows(0, b1 - b0);
    tape_.restore_rows(key_, b0, out);
    return out;
  }

 private:
  Tape& tape_;
  TapeKey key_;
  Tensor buf_, whole_;
};

// dinp = LN'(dout) over the samples by chunks of cb, its input read through SampleRows (so a
// copy the tape keeps is never whole in dense form); dweight and dbias sum chunk after chunk.
void layernorm_backward_rows(const StepContext& ctx, Tape& tape, int l, Site input, Site mean_site,
                             Site rstd_site, const SitePolicy& policy, int64_t cb,
                             const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                             const Tensor& dout, const Tensor& weight) {
  const int64_t B = ctx.B, S = ctx.S;
  const Tensor mean = tape.restore({l, mean_site}), rstd = tape.restore({l, rstd_site});
  SampleRows x(ctx, tape, {l, input}, policy, {S, ctx.H}, cb);
  for (int64_t b0 = 0; b0 < B; b0 += cb) {
    const int64_t b1 = std::min(B, b0 + cb);
    layernorm_backward(dinp.rows(b0, b1), dweight, dbias, dout.rows(b0, b1), x.rows(b0, b1),
                       mean.rows(b0 * S, b1 * S), rstd.rows(b0 * S, b1 * S), weight);
  }
}

// h1 = LN1(dropout(merge(softmax(Q Kᵀ · scale + mask) V) W_ao + b_ao) + x), Q/K/V = split(x W + b).
// Saves the attention input, Q, K, V, P (or, with flash, the logsumexp and possibly the output),
// the attention-output dense input and the LN1 input with its statistics.
Tensor self_attention_forward(const StepContext& ctx, int l, const BertLayerWeights& w,
                              const Tensor& x, const LayerRecord& rec, Tape* tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, N = ctx.N, D = ctx.D;
  const Tensor& ids = ctx.example_ids;
  Tensor q = ctx.act({B, N, S, D}), k = ctx.act({B, N, S, D}), v = ctx.act({B, N, S, D});
  {
    Tensor t = ctx.act({B, S, H});
    linear_forward(t, x, w.q_w, w.q_b);
    split_heads(q, t, N);
    linear_forward(t, x, w.k_w, w.k_b);
    split_heads(k, t, N);
    linear_forward(t, x, w.v_w, w.v_b);
    split_heads(v, t, N);
  }
  Tensor ctx_h = ctx.act({B, N, S, D});
  Tensor probs, lse;
  const DropoutKey attn_key = ctx.key(dropout_site(l, kDropAttention));
  if (rec.flash) {
    lse = Tensor::empty({B, N, S}, DType::f32, ctx.device);
    flash_attention_forward(ctx_h, lse, q, k, v, ctx.mask, ctx.scale, ctx.p_attn, attn_key, ids);
  } else if (tape && !Tape::rows_chunkable(rec.policy[Site::probs], ctx.act_dtype)) {
    probs = ctx.act({B, N, S, S});  // the tape keeps P itself: it is whole anyway
    attention_forward(ctx_h, probs, q, k, v, ctx.mask, ctx.scale, ctx.p_attn, attn_key, ids);
  } else {
    // By chunks of samples (kAttentionWorkspaceBytes): each chunk's P is packed (or cast) onto the
    // tape as soon as it is formed, or dropped when nothing keeps it.
    const TapeKey pk{l, Site::probs};
    const SitePolicy& pp = rec.policy[Site::probs];
    if (tape) tape->begin_rows(pk, {B, N, S, S}, ctx.act_dtype, pp);
    const int64_t cb = ctx.attention_chunk();
    Tensor buf = ctx.act({cb, N, S, S});
    for (int64_t b0 = 0; b0 < B; b0 += cb) {
      const int64_t b1 = std::min(B, b0 + cb);
      const Tensor pc = b1 - b0 == cb ? buf : buf.rows(0, b1 - b0);
      attention_forward(ctx_h.rows(b0, b1), pc, q.rows(b0, b1), k.rows(b0, b1), v.rows(b0, b1),
                        sample_rows(ctx.mask, b0, b1), ctx.scale, ctx.p_attn, attn_key,
                        sample_rows(ids, b0, b1));
      if (!tape) continue;
      // as save_site: a sparse save skips padding (zeroed just before packing)
      if (pp.mode == SaveMode::sparse && ctx.padding.defined())
        zero_padding_rows(pc, ctx.padding.rows(b0, b1));
      tape->save_rows(pk, b0, pc);
    }
  }
  // Each activation goes onto the tape as soon as forward is done with it, so that a packed (or
  // cast) site's dense tensor is freed before the next ones are formed.
  if (tape) {
    const BackRazorPolicy& p = rec.policy;
    save_site(*tape, ctx, l, Site::q, q, p[Site::q]);
    save_site(*tape, ctx, l, Site::k, k, p[Site::k]);
    if (rec.flash) {
      tape->save({l, Site::attn_lse}, lse);
    } else if (probs.defined()) {  // else saved chunk by chunk above
      save_site(*tape, ctx, l, Site::probs, probs, p[Site::probs]);
    }
    save_site(*tape, ctx, l, Site::v, v, p[Site::v]);
  }
  q = k = v = probs = lse = Tensor();
  Tensor attn = ctx.act({B, S, H});
  merge_heads(attn, ctx_h);
  if (!tape || !rec.attn_out_saved()) ctx_h = Tensor();
  Tensor a = ctx.act({B, S, H});
  linear_forward(a, attn, w.ao_w, w.ao_b);
  if (tape) {
    save_site(*tape, ctx, l, Site::attn_out_input, attn, rec.policy[Site::attn_out_input]);
    if (rec.attn_out_saved()) tape->save({l, Site::attn_out}, ctx_h);
  }
  attn = ctx_h = Tensor();
  dropout_forward(a, a, ctx.p_hidden, ctx.key(dropout_site(l, kDropAttnOut)), ids);
  Tensor x1 = ctx.act({B, S, H}), h1 = ctx.act({B, S, H});
  Tensor mean = ctx.stats(), rstd = ctx.stats();
  layernorm_forward(h1, mean, rstd, a, x, w.ln1_w, w.ln1_b, ctx.eps, x1);
  a = Tensor();
  if (tape) {
    const BackRazorPolicy& p = rec.policy;
    save_site(*tape, ctx, l, Site::attn_input, x, p[Site::attn_input]);
    save_site(*tape, ctx, l, Site::ln1_input, x1, p[Site::ln1_input]);
    tape->save({l, Site::ln1_mean}, mean);
    tape->save({l, Site::ln1_rstd}, rstd);
  }
  return h1;
}

// The flash attention's backward (the whole batch at once): the attention-output dense backward,
// dctx_h = split(dropout'(dx) W_ao), then dQ, dK, dV from the saved Q, K, V, logsumexp and
// output (saved apart, or the attention-output dense input itself when that is dense).
std::array<Tensor, 3> flash_attention_block_backward(const StepContext& ctx, int l,
                                                     const BertLayerWeights& w,
                                                     BertLayerWeights& gw, const Tensor& dx,
                                                     const LayerRecord& rec, Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, N = ctx.N, D = ctx.D;
  Tensor dctx_h = ctx.act({B, N, S, D}), out_h;
  {
    Tensor dattn = ctx.act({B, S, H}), da = ctx.act({B, S, H});
    dropout_backward(da, dx, ctx.p_hidden, ctx.key(dropout_site(l, kDropAttnOut)),
                     ctx.example_ids);
    Tensor attn = tape.restore({l, Site::attn_out_input});
    linear_backward(dattn, gw.ao_w, gw.ao_b, da, attn, w.ao_w);
    if (rec.attn_out_saved()) {
      out_h = tape.restore({l, Site::attn_out});
    } else {
      out_h = ctx.act({B, N, S, D});
      split_heads(out_h, attn, N);
    }
    split_heads(dctx_h, dattn, N);
  }
  std::array<Tensor, 3> d = {ctx.act({B, N, S, D}), ctx.act({B, N, S, D}), ctx.act({B, N, S, D})};
  Tensor v = tape.restore({l, Site::v});
  Tensor k = tape.restore({l, Site::k}), q = tape.restore({l, Site::q});
  Tensor lse = tape.restore({l, Site::attn_lse});
  flash_attention_backward(d[0], d[1], d[2], dctx_h, q, k, v, out_h, lse, ctx.mask, ctx.scale,
                           ctx.p_attn, ctx.key(dropout_site(l, kDropAttention)), ctx.example_ids);
  return d;
}

// Adjoint of self_attention_forward: dx = the LN1 input gradient (residual) + Σ dproj·W over Q, K
// and V (exact), the weight gradients from the saved (possibly pruned) inputs. The materialized
// attention goes through the batch by the chunks of samples its forward uses
// (ctx.attention_chunk(), shapes only): per chunk the attention-output dense backward, the
// attention core from that chunk's P, and the Q, K, V projections' backward, each saved input read
// through SampleRows, so that only dx is ever whole; the weight gradients sum chunk after chunk.
Tensor self_attention_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                               BertLayerWeights& gw, Tensor dh1, const LayerRecord& rec,
                               Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, N = ctx.N, D = ctx.D;
  const BackRazorPolicy& p = rec.policy;
  const int64_t cb = rec.flash ? B : ctx.attention_chunk();
  Tensor dx = ctx.act({B, S, H});  // the residual path first, then += each projection's part
  layernorm_backward_rows(ctx, tape, l, Site::ln1_input, Site::ln1_mean, Site::ln1_rstd,
                          p[Site::ln1_input], cb, dx, gw.ln1_w, gw.ln1_b, dh1, w.ln1_w);
  dh1 = Tensor();
  const std::array<std::array<const Tensor*, 3>, 3> proj = {{{&w.q_w, &gw.q_w, &gw.q_b},
                                                      {&w.k_w, &gw.k_w, &gw.k_b},
                                                      {&w.v_w, &gw.v_w, &gw.v_b}}};
  if (rec.flash) {
    std::array<Tensor, 3> dqkv = flash_attention_block_backward(ctx, l, w, gw, dx, rec, tape);
    // Q, K and V read the same input: dx += Σ dproj·W (exact), weight grads from the saved x.
    Tensor x = tape.restore({l, Site::attn_input});
    Tensor dproj = ctx.act({B, S, H}), dxp = ctx.act({B, S, H});
    for (size_t i = 0; i < 3; ++i) {
      merge_heads(dproj, dqkv[i]);
      linear_backward(dxp, *proj[i][1], *proj[i][2], dproj, x, *proj[i][0]);
      add(dx, dx, dxp);
    }
    return dx;
  }
  SampleRows attn(ctx, tape, {l, Site::attn_out_input}, p[Site::attn_out_input], {S, H}, cb);
  SampleRows v(ctx, tape, {l, Site::v}, p[Site::v], {N, S, D}, cb);
  SampleRows k(ctx, tape, {l, Site::k}, p[Site::k], {N, S, D}, cb);
  SampleRows q(ctx, tape, {l, Site::q}, p[Site::q], {N, S, D}, cb);
  SampleRows probs(ctx, tape, {l, Site::probs}, p[Site::probs], {N, S, S}, cb);
  SampleRows x(ctx, tape, {l, Site::attn_input}, p[Site::attn_input], {S, H}, cb);
  // per chunk: da (then each dproj), dattn (then each dxp), dctx_h, dQ, dK, dV
  std::array<Tensor, 6> buf;
  for (Tensor& t : buf) t = ctx.act({cb, S, H});
  const DropoutKey out_key = ctx.key(dropout_site(l, kDropAttnOut));
  const DropoutKey attn_key = ctx.key(dropout_site(l, kDropAttention));
  for (int64_t b0 = 0; b0 < B; b0 += cb) {
    const int64_t b1 = std::min(B, b0 + cb), n = b1 - b0;
    const Tensor ids = sample_rows(ctx.example_ids, b0, b1), dxc = dx.rows(b0, b1);
    const Tensor da = leading(buf[0], n), dattn = leading(buf[1], n);
    const Tensor dctx_h = leading(buf[2], n).view({n, N, S, D});
    const std::array<Tensor, 3> d = {leading(buf[3], n).view({n, N, S, D}),
                                     leading(buf[4], n).view({n, N, S, D}),
                                     leading(buf[5], n).view({n, N, S, D})};
    dropout_backward(da, dxc, ctx.p_hidden, out_key, ids);
    linear_backward(dattn, gw.ao_w, gw.ao_b, da, attn.rows(b0, b1), w.ao_w);
    split_heads(dctx_h, dattn, N);
    attention_backward(d[0], d[1], d[2], dctx_h, q.rows(b0, b1), k.rows(b0, b1), v.rows(b0, b1),
                       probs.rows(b0, b1), ctx.scale, ctx.p_attn, attn_key, ids);
    // Q, K and V read the same input: dx += Σ dproj·W (exact), weight grads from the saved x.
    const Tensor xc = x.rows(b0, b1);
    for (size_t i = 0; i < 3; ++i) {
      merge_heads(da, d[i]);
      linear_backward(dattn, *proj[i][1], *proj[i][2], da, xc, *proj[i][0]);
      add(dxc, dxc, dattn);
    }
  }
  return dx;
}

// ---- encoder layer: feed-forward block ----

// out = LN2(dropout(gelu(h1 W_1 + b_1) W_2 + b_2) + h1). Saves the FFN1, GELU and FFN2 inputs and
// the LN2 input with its statistics (the FFN2 input as a recompute record when the policy says).
// FFN1, GELU and FFN2 go through the batch by the chunks of samples the backward uses
// (ctx.ffn_chunk(), shapes only, so every plan and evaluation get the same bits): a [B,S,F]
// activation is whole only when the tape keeps it as is (dense); else one chunk's buffer is
// reused, and the tape's copy (sparse, low precision) is written chunk by chunk.
Tensor feed_forward_forward(const StepContext& ctx, int l, const BertLayerWeights& w,
                            const Tensor& h1, const LayerRecord& rec, Tape* tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, F = ctx.F, cb = ctx.ffn_chunk();
  const BackRazorPolicy& p = rec.policy;
  const SitePolicy &pf = p[Site::gelu_input], &pg = p[Site::ffn2_input];
  const bool f_copy = tape && Tape::rows_chunkable(pf, ctx.act_dtype);
  const bool g_copy = tape && Tape::rows_chunkable(pg, ctx.act_dtype);
  const bool f_whole = tape && !f_copy;
  const bool g_whole = tape && !g_copy && pg.mode != SaveMode::recompute;
  Tensor f = ctx.act({f_whole ? B : cb, S, F}), g = ctx.act({g_whole ? B : cb, S, F});
  if (f_copy) tape->begin_rows({l, Site::gelu_input}, {B, S, F}, ctx.act_dtype, pf);
  if (g_copy) tape->begin_rows({l, Site::ffn2_input}, {B, S, F}, ctx.act_dtype, pg);
  // as save_site: a sparse copy skips padding, zeroed once the chunk is dead
  auto save_chunk = [&](Site site, const SitePolicy& sp, int64_t b0, const Tensor& x) {
    if (sp.mode == SaveMode::sparse && ctx.padding.defined())
      zero_padding_rows(x, ctx.padding.rows(b0, b0 + x.size(0)));
    tape->save_rows({l, site}, b0, x);
  };
  Tensor o = ctx.act({B, S, H});
  for (int64_t b0 = 0; b0 < B; b0 += cb) {
    const int64_t b1 = std::min(B, b0 + cb), n = b1 - b0;
    const Tensor fc = f_whole ? f.rows(b0, b1) : leading(f, n);
    const Tensor gc = g_whole ? g.rows(b0, b1) : leading(g, n);
    linear_forward(fc, h1.rows(b0, b1), w.ffn1_w, w.ffn1_b);
    gelu_forward(gc, fc);
    if (f_copy) save_chunk(Site::gelu_input, pf, b0, fc);
    linear_forward(o.rows(b0, b1), gc, w.ffn2_w, w.ffn2_b);
    if (g_copy) save_chunk(Site::ffn2_input, pg, b0, gc);
  }
  if (!f_whole) f = Tensor();
  if (!g_whole) g = Tensor();
  dropout_forward(o, o, ctx.p_hidden, ctx.key(dropout_site(l, kDropFfnOut)), ctx.example_ids);
  Tensor x2 = ctx.act({B, S, H}), out = ctx.act({B, S, H});
  Tensor mean = ctx.stats(), rstd = ctx.stats();
  layernorm_forward(out, mean, rstd, o, h1, w.ln2_w, w.ln2_b, ctx.eps, x2);
  if (tape) {
    save_site(*tape, ctx, l, Site::ffn1_input, h1, p[Site::ffn1_input]);
    if (f_whole) save_site(*tape, ctx, l, Site::gelu_input, f, pf);
    if (g_whole) save_site(*tape, ctx, l, Site::ffn2_input, g, pg);
    if (pg.mode == SaveMode::recompute)
      tape->record_recompute({l, Site::ffn2_input}, {B, S, F}, ctx.act_dtype, pg);
    save_site(*tape, ctx, l, Site::ln2_input, x2, p[Site::ln2_input]);
    tape->save({l, Site::ln2_mean}, mean);
    tape->save({l, Site::ln2_rstd}, rstd);
  }
  return out;
}

// df = gelu'(f) ⊙ (dropout'(dx2) W_2): the FFN2 and GELU backward, W_2's gradient from the saved
// FFN2 input or from gelu(f) recomputed.
Tensor ffn2_gelu_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                          BertLayerWeights& gw, const Tensor& dx2, const LayerRecord& rec,
                          Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, F = ctx.F;
  Tensor dg = ctx.act({B, S, F});
  Tensor f;  // the GELU input; restored first when the FFN2 input is rebuilt from it
  {
    Tensor d_o = ctx.act({B, S, H});
    dropout_backward(d_o, dx2, ctx.p_hidden, ctx.key(dropout_site(l, kDropFfnOut)),
                     ctx.example_ids);
    if (rec.ffn2_recomputed()) {
      f = tape.restore({l, Site::gelu_input});
      Tensor g = ctx.act({B, S, F});
      gelu_forward(g, f);
      linear_backward(dg, gw.ffn2_w, gw.ffn2_b, d_o, g, w.ffn2_w);
    } else {
      linear_backward(dg, gw.ffn2_w, gw.ffn2_b, d_o, tape.restore({l, Site::ffn2_input}), w.ffn2_w);
      f = tape.restore({l, Site::gelu_input});
    }
  }
  Tensor df = ctx.act({B, S, F});
  gelu_backward(df, dg, f);
  return df;
}

// Adjoint of feed_forward_forward: dh1 = the LN2 input gradient (residual) + FFN1's input gradient.
Tensor feed_forward_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                             BertLayerWeights& gw, Tensor dout, const LayerRecord& rec, Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, F = ctx.F;
  const int64_t cb = ctx.ffn_chunk();
  // LN2 over o + h1: the gradient of the sum flows to both.
  Tensor dx2 = ctx.act({B, S, H});
  layernorm_backward_rows(ctx, tape, l, Site::ln2_input, Site::ln2_mean, Site::ln2_rstd,
                          rec.policy[Site::ln2_input], cb, dx2, gw.ln2_w, gw.ln2_b, dout, w.ln2_w);
  dout = Tensor();
  if (cb >= B) {
    const Tensor df = ffn2_gelu_backward(ctx, l, w, gw, dx2, rec, tape);
    Tensor dh1 = ctx.act({B, S, H});
    linear_backward(dh1, gw.ffn1_w, gw.ffn1_b, df, tape.restore({l, Site::ffn1_input}), w.ffn1_w);
    add(dh1, dh1, dx2);
    return dh1;
  }
  // By chunks of samples (kFfnWorkspaceBytes): no [B,S,F] buffer is ever whole, and dh1 is
  // accumulated into dx2's rows as each chunk finishes with them.
  const bool recompute_g = rec.ffn2_recomputed();
  const BackRazorPolicy& p = rec.policy;
  std::optional<SampleRows> g_in;
  if (!recompute_g) g_in.emplace(ctx, tape, TapeKey{l, Site::ffn2_input}, p[Site::ffn2_input], Shape{S, F}, cb);
  SampleRows f_in(ctx, tape, {l, Site::gelu_input}, p[Site::gelu_input], {S, F}, cb);
  SampleRows h1_in(ctx, tape, {l, Site::ffn1_input}, p[Site::ffn1_input], {S, H}, cb);
  Tensor d_o_buf = ctx.act({cb, S, H}), dg_buf = ctx.act({cb, S, F}), dxp_buf = ctx.act({cb, S, H});
  Tensor g_buf = recompute_g ? ctx.act({cb, S, F}) : Tensor();
  const DropoutKey key = ctx.key(dropout_site(l, kDropFfnOut));
  for (int64_t b0 = 0; b0 < B; b0 += cb) {
    const int64_t b1 = std::min(B, b0 + cb), n = b1 - b0;
    const Tensor d_o = leading(d_o_buf, n), dg = leading(dg_buf, n), dxp = leading(dxp_buf, n);
    const Tensor dx2c = dx2.rows(b0, b1);
    dropout_backward(d_o, dx2c, ctx.p_hidden, key, sample_rows(ctx.example_ids, b0, b1));
    const Tensor f = f_in.rows(b0, b1);
    Tensor g;
    if (recompute_g) {
      g = leading(g_buf, n);
      gelu_forward(g, f);
    } else {
      g = g_in->rows(b0, b1);
    }
    linear_backward(dg, gw.ffn2_w, gw.ffn2_b, d_o, g, w.ffn2_w);
    gelu_backward(dg, dg, f);  // df, in place
    linear_backward(dxp, gw.ffn1_w, gw.ffn1_b, dg, h1_in.rows(b0, b1), w.ffn1_w);
    add(dx2c, dxp, dx2c);  // dh1 = FFN1's input gradient + the residual's, as the whole-batch sum
  }
  return dx2;
}

}  // namespace

Tensor encoder_layer_forward(const StepContext& ctx, int l, const BertLayerWeights& w, Tensor x,
                             const LayerRecord& rec, Tape* tape) {
  Tensor h1 = self_attention_forward(ctx, l, w, x, rec, tape);
  x = Tensor();
  return feed_forward_forward(ctx, l, w, h1, rec, tape);
}

Tensor encoder_layer_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                              BertLayerWeights& gw, Tensor dout, const LayerRecord& rec,
                              Tape& tape) {
  Tensor dh1 = feed_forward_backward(ctx, l, w, gw, std::move(dout), rec, tape);
  return self_attention_backward(ctx, l, w, gw, std::move(dh1), rec, tape);
}

// ---- head ----

Tensor head_forward(const StepContext& ctx, const BertWeights& P, Tensor h, int64_t C,
                    const BackRazorPolicy& policy, Tape* tape) {
  const int64_t B = ctx.B, H = ctx.H;
  Tensor cls = ctx.act({B, H});
  gather_first_token(cls, h);
  h = Tensor();
  Tensor pooled = ctx.act({B, H});
  linear_forward(pooled, cls, P.pooler_w, P.pooler_b);
  tanh_forward(pooled, pooled);
  Tensor pooled_d = ctx.act({B, H});
  dropout_forward(pooled_d, pooled, ctx.p_cls, ctx.key(kDropClassifier), ctx.example_ids);
  Tensor logits = ctx.act({B, C});
  linear_forward(logits, pooled_d, P.classifier_w, P.classifier_b);
  if (tape) {
    save_site(*tape, ctx, -1, Site::pooler_input, cls, policy[Site::pooler_input]);
    tape->save({-1, Site::pooler_output}, pooled);
    save_site(*tape, ctx, -1, Site::classifier_input, pooled_d, policy[Site::classifier_input]);
  }
  return logits;
}

Tensor head_backward(const StepContext& ctx, const BertWeights& P, BertWeights& g,
                     const Tensor& dlogits, Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H;
  Tensor dcls = ctx.act({B, H});
  {
    Tensor dpooled_d = ctx.act({B, H});
    linear_backward(dpooled_d, g.classifier_w, g.classifier_b, dlogits,
                    tape.restore({-1, Site::classifier_input}), P.classifier_w);
    Tensor dpooled = ctx.act({B, H});
    dropout_backward(dpooled, dpooled_d, ctx.p_cls, ctx.key(kDropClassifier), ctx.example_ids);
    tanh_backward(dpooled, dpooled, tape.restore({-1, Site::pooler_output}));
    linear_backward(dcls, g.pooler_w, g.pooler_b, dpooled, tape.restore({-1, Site::pooler_input}),
                    P.pooler_w);
  }
  Tensor dh = Tensor::zeros({B, S, H}, ctx.act_dtype, ctx.device);
  scatter_first_token(dh, dcls);
  return dh;
}

// ---- small helpers ----

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
