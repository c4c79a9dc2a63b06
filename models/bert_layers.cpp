// BERT's pieces, forward beside backward (Hugging Face BertForSequenceClassification, post-LN).
// Every saved activation comes back from the tape; under Back Razor it is the pruned
// reconstruction, which makes weight gradients (and, for Q·Kᵀ, P·V and LayerNorm, the input
// gradients) approximate while the forward stays exact.
#include "models/bert_layers.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>
#include <tuple>
#include <utility>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/bias.h"
#include "kernels/cast.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/fused.h"
#include "kernels/gemm.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/padding.h"
#include "kernels/permute.h"
#include "kernels/softmax.h"
#include "kernels/sparse_pack.h"
#include "models/bert.h"

namespace br {

Tensor StepContext::stats() const {
  return Tensor::empty({B * S}, model_dtype == DType::f64 ? DType::f64 : DType::f32, device);
}

int64_t StepContext::keep(Site site, const SitePolicy& policy, int64_t n, int seq_dims) const {
  if (policy.mode != SaveMode::sparse || rank_S == 0 || rank_S == S) return 0;
  // How many of a sample's dimensions are the sequence: two for the probabilities [N,S,S], none
  // for the head's [H] rows, else one ([S,·], [N,S,D]).
  if (seq_dims < 0)
    seq_dims = site == Site::probs                                             ? 2
               : site == Site::pooler_input || site == Site::classifier_input ? 0
                                                                               : 1;
  BR_CHECK(rank_S > S, "StepContext: sparse sites ranked at length {} for a batch of length {}",
           rank_S, S);
  int64_t padded = n;
  for (int i = 0; i < seq_dims; ++i) padded = padded / S * rank_S;
  return std::min(n, backrazor_keep_count(padded, policy.prune_ratio));
}

namespace {
bool none_sparse(const BackRazorPolicy& layer_policy, std::initializer_list<Site> sites) {
  for (Site s : sites)
    if (layer_policy[s].mode == SaveMode::sparse) return false;
  return true;
}
}  // namespace

bool first_token_trainable(const BackRazorPolicy& layer_policy, bool skip_padding) {
  return skip_padding ||
         none_sparse(layer_policy, {Site::ffn1_input, Site::gelu_input, Site::ffn2_input, Site::ln2_input});
}

bool first_token_queries_trainable(const BackRazorPolicy& layer_policy, bool skip_padding) {
  return skip_padding ||
         none_sparse(layer_policy, {Site::q, Site::probs, Site::attn_out_input, Site::ln1_input});
}

namespace {
// The context of a feed-forward block on the [CLS] rows (LayerRecord::first_token): sequence
// length 1, so the element indices within a sample (dropout's) are those of row 0 in the whole
// layout; [CLS] is never padding.
StepContext first_token_context(const StepContext& ctx) {
  StepContext first = ctx;
  first.S = 1;
  first.rank_S = 0;  // a [CLS] row keeps its own share
  first.mask = first.padding = Tensor();
  return first;
}

// A sparse save skips padding: x (samples [b0, b0 + x.size(0)) of a [B,S,...] or [B,N,S,...]
// activation) is dead in forward once saved, so its padding rows are zeroed in place just before
// packing.
void zero_padding_before_pack(const StepContext& ctx, const SitePolicy& policy, const Tensor& x,
                              int64_t b0) {
  if (policy.mode == SaveMode::sparse && ctx.padding.defined() && x.dim() >= 3)
    zero_padding_rows(x, ctx.padding.rows(b0, b0 + x.size(0)));
}

}  // namespace

void save_site(Tape& tape, const StepContext& ctx, int layer, Site site, const Tensor& x,
               const SitePolicy& policy, int seq_dims) {
  zero_padding_before_pack(ctx, policy, x, 0);
  tape.save({layer, site}, x, policy, ctx.keep(site, policy, x.numel() / x.size(0), seq_dims));
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
// reconstructed chunk by chunk into a buffer of `cb` samples; a tensor the tape keeps as is comes
// back whole and is read through views. Nothing is taken from the tape before the first rows();
// done(b1) after the chunk ending at b1 == B lets go of the buffer and the tape's entry (else the
// destructor does), so that with one chunk each input lives only while it is read.
class SampleRows {
 public:
  SampleRows(const StepContext& ctx, Tape& tape, TapeKey key, const SitePolicy& policy,
             const Shape& sample_shape, int64_t cb)
      : ctx_(ctx), tape_(tape), key_(key), copy_(Tape::rows_chunkable(policy, ctx.act_dtype)),
        shape_(sample_shape) {
    shape_.insert(shape_.begin(), cb);
  }
  SampleRows(const SampleRows&) = delete;
  SampleRows& operator=(const SampleRows&) = delete;
  ~SampleRows() { release(); }
  // Samples [b0, b1) of the dense reconstruction; valid until the next call.
  Tensor rows(int64_t b0, int64_t b1) {
    if (!copy_) {
      if (!whole_.defined()) whole_ = tape_.restore(key_);
      return whole_.rows(b0, b1);
    }
    if (!buf_.defined()) buf_ = ctx_.act(shape_);
    const Tensor out = leading(buf_, b1 - b0);
    tape_.restore_rows(key_, b0, out);
    return out;
  }
  // The chunk ending at b1 has been read: after the batch's last one, the site is let go.
  void done(int64_t b1) {
    if (b1 == ctx_.B) release();
  }

 private:
  void release() {
    if (buf_.defined()) tape_.release(key_);
    buf_ = whole_ = Tensor();
  }
  const StepContext& ctx_;
  Tape& tape_;
  TapeKey key_;
  bool copy_;
  Shape shape_;  // one chunk's
  Tensor buf_, whole_;
};

// A site formed by chunks of samples in forward (SampleRows's counterpart): whole when the tape
// keeps the tensor as is (dense: each chunk is a view, and finish() saves the whole), else one
// chunk's buffer, reused, each chunk going into the tape's copy (sparse, low precision) once
// forward is done with it, or nowhere (no tape; a recompute site, which finish() records). A chunk
// buffer may be another site's (`share`, of cb samples): the two are then formed in place.
class ChunkedSite {
 public:
  ChunkedSite(const StepContext& ctx, Tape* tape, int l, Site site, const SitePolicy& policy,
              const Shape& sample_shape, int64_t cb, const Tensor& share = Tensor())
      : ctx_(ctx), tape_(tape), key_{l, site}, policy_(policy), shape_(sample_shape) {
    shape_.insert(shape_.begin(), ctx.B);
    copy_ = tape && Tape::rows_chunkable(policy, ctx.act_dtype);
    whole_ = kept_whole(tape, policy, ctx);
    Shape s = sample_shape;
    s.insert(s.begin(), whole_ ? ctx.B : cb);
    t_ = !whole_ && share.defined() ? share : ctx.act(s);
    BR_CHECK(t_.shape() == s, "ChunkedSite '{}': a shared buffer {} for chunks of {}",
             key_.name(), t_.str(), shape_str(s));
    if (copy_)
      tape->begin_rows(key_, shape_, ctx.act_dtype, policy,
                       ctx.keep(site, policy, shape_numel(sample_shape)));
  }
  // Whether a tape keeps a site of `policy` as it is (dense), so that it is formed whole.
  static bool kept_whole(const Tape* tape, const SitePolicy& policy, const StepContext& ctx) {
    return tape && !Tape::rows_chunkable(policy, ctx.act_dtype) &&
           policy.mode != SaveMode::recompute;
  }
  ChunkedSite(const ChunkedSite&) = delete;
  ChunkedSite& operator=(const ChunkedSite&) = delete;
  // The chunk buffer, for a site formed in place in it.
  const Tensor& chunk_buffer() const { return t_; }
  // Where samples [b0, b1) are formed.
  Tensor rows(int64_t b0, int64_t b1) const {
    return whole_ ? t_.rows(b0, b1) : leading(t_, b1 - b0);
  }
  // Forward is done with samples [b0, b0 + x.size(0)) (x from rows()): into the tape's copy, a
  // sparse one skipping padding (as save_site).
  void done(int64_t b0, const Tensor& x) const {
    if (!copy_) return;
    zero_padding_before_pack(ctx_, policy_, x, b0);
    tape_->save_rows(key_, b0, x);
  }
  // Every chunk is done: a whole tensor goes onto the tape, a recompute site is recorded, and the
  // buffer is let go.
  void finish() {
    if (whole_)
      save_site(*tape_, ctx_, key_.layer, key_.site, t_, policy_);
    else if (tape_ && policy_.mode == SaveMode::recompute)
      tape_->record_recompute(key_, shape_, ctx_.act_dtype, policy_);
    t_ = Tensor();
  }
  bool whole() const { return whole_; }

 private:
  const StepContext& ctx_;
  Tape* tape_;
  TapeKey key_;
  SitePolicy policy_;
  Shape shape_;  // the whole site's
  bool copy_ = false, whole_ = false;
  Tensor t_;
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
    x.done(b1);
  }
}

// h1 = LN1(dropout(merge(softmax(Q Kᵀ · scale + mask) V) W_ao + b_ao) + x), Q/K/V = split(x W + b).
// Saves the attention input, Q, K, V, P (or, with flash, the logsumexp and possibly the output),
// the attention-output dense input and the LN1 input with its statistics. The materialized
// attention goes through the batch by chunks of samples (ctx.attention_chunk(), shapes only, so
// every plan and evaluation get the same bits): each saved site is whole only when the tape keeps
// it as is (ChunkedSite), and only x and h1 are always whole. Flash runs on the whole batch.
Tensor self_attention_forward(const StepContext& ctx, int l, const BertLayerWeights& w,
                              const Tensor& x, const LayerRecord& rec, Tape* tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, N = ctx.N, D = ctx.D;
  const int64_t cb = rec.flash ? B : ctx.attention_chunk();
  const BackRazorPolicy& p = rec.policy;
  ChunkedSite q(ctx, tape, l, Site::q, p[Site::q], {N, S, D}, cb);
  ChunkedSite k(ctx, tape, l, Site::k, p[Site::k], {N, S, D}, cb);
  ChunkedSite v(ctx, tape, l, Site::v, p[Site::v], {N, S, D}, cb);
  Tensor t = ctx.act({cb, S, H});
  // the attention output: kept dense beside a non-dense dense input when flash needs it
  ChunkedSite out_h(ctx, rec.attn_out_saved() ? tape : nullptr, l, Site::attn_out, SitePolicy{},
                    {N, S, D}, cb);
  Tensor lse;
  std::optional<ChunkedSite> probs;
  if (rec.flash)
    lse = Tensor::empty({B, N, S}, DType::f32, ctx.device);
  else
    probs.emplace(ctx, tape, l, Site::probs, p[Site::probs], Shape{N, S, S}, cb);
  ChunkedSite attn(ctx, tape, l, Site::attn_out_input, p[Site::attn_out_input], {S, H}, cb);
  Tensor a = ctx.act({cb, S, H});
  ChunkedSite x1(ctx, tape, l, Site::ln1_input, p[Site::ln1_input], {S, H}, cb);
  Tensor h1 = ctx.act({B, S, H});
  Tensor mean = ctx.stats(), rstd = ctx.stats();
  const DropoutKey attn_key = ctx.key(dropout_site(l, kDropAttention));
  const DropoutKey out_key = ctx.key(dropout_site(l, kDropAttnOut));
  for (int64_t b0 = 0; b0 < B; b0 += cb) {
    const int64_t b1 = std::min(B, b0 + cb), n = b1 - b0;
    const Tensor xc = x.rows(b0, b1), tc = leading(t, n), ac = leading(a, n);
    const Tensor ids = sample_rows(ctx.example_ids, b0, b1), mask = sample_rows(ctx.mask, b0, b1);
    const Tensor qc = q.rows(b0, b1), kc = k.rows(b0, b1), vc = v.rows(b0, b1);
    linear_forward(tc, xc, w.q_w, w.q_b);
    split_heads(qc, tc, N);
    linear_forward(tc, xc, w.k_w, w.k_b);
    split_heads(kc, tc, N);
    linear_forward(tc, xc, w.v_w, w.v_b);
    split_heads(vc, tc, N);
    const Tensor oc = out_h.rows(b0, b1);
    if (rec.flash) {
      flash_attention_forward(oc, lse.rows(b0, b1), qc, kc, vc, mask, ctx.scale, ctx.p_attn,
                              attn_key, ids);
    } else {
      const Tensor pc = probs->rows(b0, b1);
      attention_forward(oc, pc, qc, kc, vc, mask, ctx.scale, ctx.p_attn, attn_key, ids);
      probs->done(b0, pc);
    }
    q.done(b0, qc);
    k.done(b0, kc);
    v.done(b0, vc);
    const Tensor attn_c = attn.rows(b0, b1);
    merge_heads(attn_c, oc);
    linear_forward(ac, attn_c, w.ao_w, w.ao_b);
    attn.done(b0, attn_c);
    dropout_forward(ac, ac, ctx.p_hidden, out_key, ids);
    const Tensor x1c = x1.rows(b0, b1);
    layernorm_forward(h1.rows(b0, b1), mean.rows(b0 * S, b1 * S), rstd.rows(b0 * S, b1 * S), ac,
                      xc, w.ln1_w, w.ln1_b, ctx.eps, x1c);
    x1.done(b0, x1c);
  }
  t = a = Tensor();
  q.finish();
  k.finish();
  v.finish();
  out_h.finish();
  if (probs) probs->finish();
  attn.finish();
  x1.finish();
  if (tape) {
    if (rec.flash) tape->save({l, Site::attn_lse}, lse);
    save_site(*tape, ctx, l, Site::attn_input, x, p[Site::attn_input]);
    tape->save({l, Site::ln1_mean}, mean);
    tape->save({l, Site::ln1_rstd}, rstd);
  }
  return h1;
}

// Adjoint of self_attention_forward: dx = the LN1 input gradient (residual) + Σ dproj·W over Q, K
// and V (exact), the weight gradients from the saved (possibly pruned) inputs. The materialized
// attention goes through the batch by the chunks of samples its forward uses
// (ctx.attention_chunk(), shapes only): per chunk the attention-output dense backward, the
// attention core from that chunk's P, and the Q, K, V projections' backward, each saved input read
// through SampleRows, so that only dx is ever whole; the weight gradients sum chunk after chunk.
// Flash runs the same steps on the whole batch as one chunk, from the logsumexp and the output.
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
  SampleRows attn(ctx, tape, {l, Site::attn_out_input}, p[Site::attn_out_input], {S, H}, cb);
  SampleRows v(ctx, tape, {l, Site::v}, p[Site::v], {N, S, D}, cb);
  SampleRows k(ctx, tape, {l, Site::k}, p[Site::k], {N, S, D}, cb);
  SampleRows q(ctx, tape, {l, Site::q}, p[Site::q], {N, S, D}, cb);
  SampleRows probs(ctx, tape, {l, Site::probs}, p[Site::probs], {N, S, S}, cb);
  SampleRows x(ctx, tape, {l, Site::attn_input}, p[Site::attn_input], {S, H}, cb);
  // flash: the attention output its backward reads, saved apart (else the attention-output dense
  // input is saved dense, and is the output), and the logsumexp; P is never formed
  std::optional<SampleRows> out_saved;
  if (rec.attn_out_saved())
    out_saved.emplace(ctx, tape, TapeKey{l, Site::attn_out}, SitePolicy{}, Shape{N, S, D}, cb);
  const Tensor lse = rec.flash ? tape.restore({l, Site::attn_lse}) : Tensor();
  // per chunk: da, then dctx_h, then each dxp in buf[0]; dattn, then each dproj in buf[1]; dQ, dK,
  // dV in buf[2..4]. Each saved input is taken from the tape when first read (SampleRows).
  std::array<Tensor, 5> buf;
  for (Tensor& t : buf) t = ctx.act({cb, S, H});
  const DropoutKey out_key = ctx.key(dropout_site(l, kDropAttnOut));
  const DropoutKey attn_key = ctx.key(dropout_site(l, kDropAttention));
  for (int64_t b0 = 0; b0 < B; b0 += cb) {
    const int64_t b1 = std::min(B, b0 + cb), n = b1 - b0;
    const Tensor ids = sample_rows(ctx.example_ids, b0, b1), dxc = dx.rows(b0, b1);
    const Tensor da = leading(buf[0], n), dattn = leading(buf[1], n);
    const Tensor dctx_h = da.view({n, N, S, D});
    const std::array<Tensor, 3> d = {leading(buf[2], n).view({n, N, S, D}),
                                     leading(buf[3], n).view({n, N, S, D}),
                                     leading(buf[4], n).view({n, N, S, D})};
    dropout_backward(da, dxc, ctx.p_hidden, out_key, ids);
    Tensor out_h;  // flash only
    {
      const Tensor attn_c = attn.rows(b0, b1);
      linear_backward(dattn, gw.ao_w, gw.ao_b, da, attn_c, w.ao_w);
      if (out_saved) {
        out_h = out_saved->rows(b0, b1);
      } else if (rec.flash) {
        out_h = ctx.act({n, N, S, D});
        split_heads(out_h, attn_c, N);
      }
    }
    attn.done(b1);
    split_heads(dctx_h, dattn, N);
    {
      const Tensor qc = q.rows(b0, b1), kc = k.rows(b0, b1), vc = v.rows(b0, b1);
      if (rec.flash) {
        flash_attention_backward(d[0], d[1], d[2], dctx_h, qc, kc, vc, out_h, lse.rows(b0, b1),
                                 sample_rows(ctx.mask, b0, b1), ctx.scale, ctx.p_attn, attn_key,
                                 ids);
      } else {
        const Tensor pc = probs.rows(b0, b1);
        attention_backward(d[0], d[1], d[2], dctx_h, qc, kc, vc, pc, ctx.scale, ctx.p_attn,
                           attn_key, ids);
      }
    }
    out_h = Tensor();
    if (out_saved) out_saved->done(b1);
    q.done(b1);
    k.done(b1);
    v.done(b1);
    probs.done(b1);
    // Q, K and V read the same input: dx += Σ dproj·W (exact), weight grads from the saved x.
    {
      const Tensor xc = x.rows(b0, b1);
      for (size_t i = 0; i < 3; ++i) {
        merge_heads(dattn, d[i]);
        linear_backward(da, *proj[i][1], *proj[i][2], dattn, xc, *proj[i][0]);
        add(dxc, dxc, da);
      }
    }
    x.done(b1);
  }
  return dx;
}

// ---- encoder layer: feed-forward block ----

// out = LN2(dropout(gelu(h1 W_1 + b_1) W_2 + b_2) + h1). Saves the FFN1, GELU and FFN2 inputs and
// the LN2 input with its statistics (the FFN2 input as a recompute record when the policy says;
// the LN2 input dense on ln2_tape when given). By the chunks of samples the backward uses
// (ctx.ffn_chunk(), shapes only, so every plan and evaluation get the same bits): each saved site
// is whole only when the tape keeps it as is (ChunkedSite), and only h1 and out (for
// LayerOutput::whole) are always whole. When nothing keeps the GELU input as is, its chunk becomes
// the GELU output in place. LayerOutput::none stops after the FFN2 input (not even formed when it
// is recomputed in backward).
Tensor feed_forward_forward(const StepContext& ctx, int l, const BertLayerWeights& w,
                            const Tensor& h1, const LayerRecord& rec, Tape* tape,
                            LayerOutput output, Tape* ln2_tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, F = ctx.F, cb = ctx.ffn_chunk();
  const BackRazorPolicy& p = rec.policy;
  const SitePolicy &pf = p[Site::gelu_input], &pg = p[Site::ffn2_input];
  const bool tail = output != LayerOutput::none;  // FFN2, dropout, LN2
  const bool form_g = tail || pg.mode != SaveMode::recompute;
  ChunkedSite f(ctx, tape, l, Site::gelu_input, pf, {S, F}, cb);
  // g formed in f's chunk buffer when neither is whole, unless f's chunks are zeroed at padding
  // before g would be formed from them
  const bool in_place = !f.whole() && !ChunkedSite::kept_whole(tape, pg, ctx) &&
                        !(pf.mode == SaveMode::sparse && ctx.padding.defined());
  std::optional<ChunkedSite> g;
  if (form_g)
    g.emplace(ctx, tape, l, Site::ffn2_input, pg, Shape{S, F}, cb,
              in_place ? f.chunk_buffer() : Tensor());
  else if (tape)
    tape->record_recompute({l, Site::ffn2_input}, {B, S, F}, ctx.act_dtype, pg);
  Tape* t2 = ln2_tape ? ln2_tape : tape;
  const SitePolicy p2 = ln2_tape ? SitePolicy{} : p[Site::ln2_input];
  Tensor o, out, mean, rstd;
  std::optional<ChunkedSite> x2;
  if (tail) {
    o = ctx.act({cb, S, H});
    x2.emplace(ctx, t2, l, Site::ln2_input, p2, Shape{S, H}, cb);
    out = ctx.act({output == LayerOutput::whole ? B : cb, S, H});
    mean = ctx.stats();
    rstd = ctx.stats();
  }
  const DropoutKey key = ctx.key(dropout_site(l, kDropFfnOut));
  for (int64_t b0 = 0; b0 < B; b0 += cb) {
    const int64_t b1 = std::min(B, b0 + cb), n = b1 - b0;
    const Tensor h1c = h1.rows(b0, b1), fc = f.rows(b0, b1);
    linear_forward(fc, h1c, w.ffn1_w, Tensor());
    if (!form_g) {
      bias_add_forward(fc, fc, w.ffn1_b);
      f.done(b0, fc);
      continue;
    }
    const Tensor gc = g->rows(b0, b1);
    if (in_place) {
      bias_add_forward(fc, fc, w.ffn1_b);
      f.done(b0, fc);  // saved before g overwrites it
      gelu_forward(gc, fc);
    } else {
      bias_gelu_forward(fc, gc, fc, w.ffn1_b);  // f = h1 W_1 + b_1 and g = gelu(f) in one pass
      f.done(b0, fc);
    }
    if (!tail) {
      g->done(b0, gc);
      continue;
    }
    const Tensor oc = leading(o, n);
    linear_forward(oc, gc, w.ffn2_w, w.ffn2_b);
    g->done(b0, gc);
    dropout_forward(oc, oc, ctx.p_hidden, key, sample_rows(ctx.example_ids, b0, b1));
    const Tensor x2c = x2->rows(b0, b1);
    const Tensor outc = output == LayerOutput::whole ? out.rows(b0, b1) : leading(out, n);
    layernorm_forward(outc, mean.rows(b0 * S, b1 * S), rstd.rows(b0 * S, b1 * S), oc,
                      h1c, w.ln2_w, w.ln2_b, ctx.eps, x2c);
    x2->done(b0, x2c);
  }
  o = Tensor();
  f.finish();
  if (g) g->finish();
  if (x2) x2->finish();
  if (tape) save_site(*tape, ctx, l, Site::ffn1_input, h1, p[Site::ffn1_input]);
  if (t2 && tail) {
    t2->save({l, Site::ln2_mean}, mean);
    t2->save({l, Site::ln2_rstd}, rstd);
  }
  return output == LayerOutput::whole ? out : Tensor();
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
  bias_gelu_backward(df, gw.ffn1_b, dg, f);  // df and b_1's gradient in one pass
  return df;
}

// Adjoint of feed_forward_forward: dh1 = the LN2 input gradient (residual) + FFN1's input gradient.
// LN2 over o + h1: the gradient of the sum flows to both.
Tensor ln2_backward(const StepContext& ctx, int l, const BertLayerWeights& w, BertLayerWeights& gw,
                    Tensor dout, const SitePolicy& policy, Tape& tape) {
  Tensor dx2 = ctx.act({ctx.B, ctx.S, ctx.H});
  layernorm_backward_rows(ctx, tape, l, Site::ln2_input, Site::ln2_mean, Site::ln2_rstd, policy,
                          ctx.ffn_chunk(), dx2, gw.ln2_w, gw.ln2_b, dout, w.ln2_w);
  return dx2;
}

// dout is the LN2 input gradient already when from_ln2.
Tensor feed_forward_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                             BertLayerWeights& gw, Tensor dout, const LayerRecord& rec, Tape& tape,
                             bool from_ln2) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, F = ctx.F;
  const int64_t cb = ctx.ffn_chunk();
  Tensor dx2 = from_ln2 ? std::move(dout)
                        : ln2_backward(ctx, l, w, gw, std::move(dout), rec.policy[Site::ln2_input],
                                       tape);
  if (cb >= B) {
    const Tensor df = ffn2_gelu_backward(ctx, l, w, gw, dx2, rec, tape);
    Tensor dh1 = ctx.act({B, S, H});
    linear_backward(dh1, gw.ffn1_w, Tensor(), df, tape.restore({l, Site::ffn1_input}), w.ffn1_w);
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
    bias_gelu_backward(dg, gw.ffn1_b, dg, f);  // df, in place, and b_1's gradient
    linear_backward(dxp, gw.ffn1_w, Tensor(), dg, h1_in.rows(b0, b1), w.ffn1_w);
    add(dx2c, dxp, dx2c);  // dh1 = FFN1's input gradient + the residual's, as the whole-batch sum
  }
  return dx2;
}

}  // namespace

namespace {

// The attention block of a forward without a tape for the [CLS] queries only: keys and values of
// every row, the query, the scores [B,N,1,S], P·V, the output projection and LN1 of each
// sample's first row. h1 [B,1,H] is what self_attention_forward would give in that row (to
// rounding: the products run as batched GEMMs and a softmax rather than the attention kernel).
// Evaluation only: no dropout on P (ctx.p_attn == 0), nothing saved.
Tensor first_token_attention_forward(const StepContext& ctx, const BertLayerWeights& w,
                                     const Tensor& x) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, N = ctx.N, D = ctx.D;
  const StepContext first = first_token_context(ctx);
  Tensor t = ctx.act({B, S, H});
  Tensor k = ctx.act({B, N, S, D}), v = ctx.act({B, N, S, D});
  linear_forward(t, x, w.k_w, w.k_b);
  split_heads(k, t, N);
  linear_forward(t, x, w.v_w, w.v_b);
  split_heads(v, t, N);
  t = Tensor();
  Tensor xc = first.act({B, 1, H}), tq = first.act({B, 1, H}), q = first.act({B, N, 1, D});
  gather_first_token(xc.view({B, H}), x);
  linear_forward(tq, xc, w.q_w, w.q_b);
  split_heads(q, tq, N);
  Tensor scores = first.act({B, N, 1, S}), probs = first.act({B, N, 1, S});
  matmul(scores, q, false, k, true);
  softmax_forward(probs, scores, ctx.mask, ctx.scale);
  Tensor o = first.act({B, N, 1, D});
  matmul(o, probs, false, v, false);
  merge_heads(tq, o);
  Tensor a = first.act({B, 1, H}), h1 = first.act({B, 1, H});
  linear_forward(a, tq, w.ao_w, w.ao_b);
  Tensor mean = first.stats(), rstd = first.stats();
  layernorm_forward(h1, mean, rstd, a, xc, w.ln1_w, w.ln1_b, ctx.eps, Tensor());
  return h1;
}

// The attention block of a training step for the [CLS] queries only (LayerRecord::
// first_token_queries): K and V of every row, Q, P [B,N,1,S] (the attention kernel on the first
// query row: the same dropout mask as the whole layer's row 0), the output projection, its
// dropout and LN1 on B rows. Saves q [B,N,1,D], k, v, probs [B,N,1,S], attn_out_input [B,1,H],
// ln1_input [B,1,H] and its statistics, then the attention input [B,S,H] (K and V read it whole,
// Q its first rows). Returns h1's [CLS] rows [B,1,H]. A sparse q, probs, attn_out_input or ln1_input
// keeps the top of each sample's [CLS] row (the probabilities by the whole batch's keys when it is
// split by length).
Tensor first_token_self_attention_forward(const StepContext& ctx, int l, const BertLayerWeights& w,
                                          const Tensor& x, const LayerRecord& rec, Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, N = ctx.N, D = ctx.D;
  const StepContext first = first_token_context(ctx);
  const BackRazorPolicy& p = rec.policy;
  Tensor k = ctx.act({B, N, S, D}), v = ctx.act({B, N, S, D});
  {
    Tensor t = ctx.act({B, S, H});
    linear_forward(t, x, w.k_w, w.k_b);
    split_heads(k, t, N);
    linear_forward(t, x, w.v_w, w.v_b);
    split_heads(v, t, N);
  }
  Tensor xc = first.act({B, 1, H}), q = first.act({B, N, 1, D});
  gather_first_token(xc.view({B, H}), x);
  {
    Tensor tq = first.act({B, 1, H});
    linear_forward(tq, xc, w.q_w, w.q_b);
    split_heads(q, tq, N);
  }
  Tensor o = first.act({B, N, 1, D}), probs = first.act({B, N, 1, S});
  attention_forward(o, probs, q, k, v, ctx.mask, ctx.scale, ctx.p_attn,
                    ctx.key(dropout_site(l, kDropAttention)), ctx.example_ids);
  save_site(tape, first, l, Site::q, q, p[Site::q]);
  save_site(tape, ctx, l, Site::k, k, p[Site::k]);
  save_site(tape, ctx, l, Site::v, v, p[Site::v]);
  // [CLS] is never padding, and P is exactly 0 at padded keys: nothing to zero; the kept count
  // is that of the batch's keys (of the whole batch's, when it is split by length).
  tape.save({l, Site::probs}, probs, p[Site::probs],
            ctx.keep(Site::probs, p[Site::probs], N * S, 1));
  q = k = v = probs = Tensor();
  Tensor attn = first.act({B, 1, H}), a = first.act({B, 1, H});
  merge_heads(attn, o);
  o = Tensor();
  linear_forward(a, attn, w.ao_w, w.ao_b);
  save_site(tape, first, l, Site::attn_out_input, attn, p[Site::attn_out_input]);
  attn = Tensor();
  dropout_forward(a, a, ctx.p_hidden, ctx.key(dropout_site(l, kDropAttnOut)), ctx.example_ids);
  Tensor x1 = first.act({B, 1, H}), h1 = first.act({B, 1, H});
  Tensor mean = first.stats(), rstd = first.stats();
  layernorm_forward(h1, mean, rstd, a, xc, w.ln1_w, w.ln1_b, ctx.eps, x1);
  a = xc = Tensor();
  save_site(tape, first, l, Site::ln1_input, x1, p[Site::ln1_input]);
  save_site(tape, ctx, l, Site::attn_input, x, p[Site::attn_input]);
  tape.save({l, Site::ln1_mean}, mean);
  tape.save({l, Site::ln1_rstd}, rstd);
  return h1;
}

// Adjoint of first_token_self_attention_forward from dcls, the gradient of h1's [CLS] rows
// [B,1,H]: LN1, the output projection and the attention core on B rows, then dx [B,S,H] = (the
// residual + Q's input gradient) in the [CLS] rows, + K's and V's input gradients in every row,
// summed in self_attention_backward's order.
Tensor first_token_self_attention_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                                           BertLayerWeights& gw, Tensor dcls,
                                           const LayerRecord& rec, Tape& tape) {
  const int64_t B = ctx.B, S = ctx.S, H = ctx.H, N = ctx.N, D = ctx.D;
  const StepContext first = first_token_context(ctx);
  Tensor dsum = first.act({B, 1, H});  // the LN1 input gradient: the residual's
  {
    Tensor mean = tape.restore({l, Site::ln1_mean}), rstd = tape.restore({l, Site::ln1_rstd});
    Tensor x1 = tape.restore({l, Site::ln1_input});
    layernorm_backward(dsum, gw.ln1_w, gw.ln1_b, dcls, x1, mean, rstd, w.ln1_w);
  }
  dcls = Tensor();
  Tensor dattn = first.act({B, 1, H});
  {
    Tensor da = first.act({B, 1, H});
    dropout_backward(da, dsum, ctx.p_hidden, ctx.key(dropout_site(l, kDropAttnOut)),
                     ctx.example_ids);
    Tensor attn = tape.restore({l, Site::attn_out_input});
    linear_backward(dattn, gw.ao_w, gw.ao_b, da, attn, w.ao_w);
  }
  Tensor dq = first.act({B, N, 1, D}), dk = ctx.act({B, N, S, D}), dv = ctx.act({B, N, S, D});
  {
    Tensor dO = first.act({B, N, 1, D});
    split_heads(dO, dattn, N);
    Tensor q = tape.restore({l, Site::q}), k = tape.restore({l, Site::k});
    Tensor v = tape.restore({l, Site::v}), probs = tape.restore({l, Site::probs});
    attention_backward(dq, dk, dv, dO, q, k, v, probs, ctx.scale, ctx.p_attn,
                       ctx.key(dropout_site(l, kDropAttention)), ctx.example_ids);
  }
  const Tensor x = tape.restore({l, Site::attn_input});
  Tensor dx = Tensor::zeros({B, S, H}, ctx.act_dtype, ctx.device);
  {
    Tensor xc = first.act({B, 1, H});
    gather_first_token(xc.view({B, H}), x);
    merge_heads(dattn, dq);
    dq = Tensor();
    Tensor dxq = first.act({B, 1, H});
    linear_backward(dxq, gw.q_w, gw.q_b, dattn, xc, w.q_w);
    add(dsum, dsum, dxq);
    scatter_first_token(dx, dsum.view({B, H}));
  }
  dsum = dattn = Tensor();
  {
    Tensor t = ctx.act({B, S, H}), dxp = ctx.act({B, S, H});
    for (auto [d, wt, gwt, gbt] : {std::tuple{&dk, &w.k_w, &gw.k_w, &gw.k_b},
                                   std::tuple{&dv, &w.v_w, &gw.v_w, &gw.v_b}}) {
      merge_heads(t, *d);
      *d = Tensor();
      linear_backward(dxp, *gwt, *gbt, t, x, *wt);
      add(dx, dx, dxp);
    }
  }
  return dx;
}

}  // namespace

Tensor encoder_layer_forward(const StepContext& ctx, int l, const BertLayerWeights& w, Tensor x,
                             const LayerRecord& rec, Tape* tape, LayerOutput output,
                             Tape* ln2_tape) {
  if (rec.first_token) {
    BR_CHECK(output == LayerOutput::whole && !ln2_tape,
             "encoder layer {}: a first-token layer is never recomputed", l);
    const StepContext first = first_token_context(ctx);
    Tensor cls;
    if (!tape && ctx.p_attn == 0 && ctx.p_hidden == 0) {
      cls = first_token_attention_forward(ctx, w, x);  // evaluation: the [CLS] queries only
      x = Tensor();
    } else if (rec.first_token_queries) {
      cls = first_token_self_attention_forward(ctx, l, w, x, rec, *tape);
      x = Tensor();
    } else {
      Tensor h1 = self_attention_forward(ctx, l, w, x, rec, tape);
      x = Tensor();
      cls = ctx.act({ctx.B, 1, ctx.H});
      gather_first_token(cls.view({ctx.B, ctx.H}), h1);
    }
    return feed_forward_forward(first, l, w, cls, rec, tape, LayerOutput::whole, nullptr);
  }
  Tensor h1 = self_attention_forward(ctx, l, w, x, rec, tape);
  x = Tensor();
  return feed_forward_forward(ctx, l, w, h1, rec, tape, output, ln2_tape);
}

Tensor encoder_layer_ln2_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                                  BertLayerWeights& gw, Tensor dout, const SitePolicy& policy,
                                  Tape& tape) {
  return ln2_backward(ctx, l, w, gw, std::move(dout), policy, tape);
}

Tensor encoder_layer_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                              BertLayerWeights& gw, Tensor dout, const LayerRecord& rec,
                              Tape& tape, bool from_ln2) {
  if (rec.first_token) {
    // dout [B,1,H]: the feed-forward block's backward on the [CLS] rows, whose input gradient is
    // the only non-zero row of each sample's attention-block output gradient.
    Tensor dcls = feed_forward_backward(first_token_context(ctx), l, w, gw, std::move(dout), rec,
                                        tape, from_ln2);
    if (rec.first_token_queries)
      return first_token_self_attention_backward(ctx, l, w, gw, std::move(dcls), rec, tape);
    Tensor dh1 = Tensor::zeros({ctx.B, ctx.S, ctx.H}, ctx.act_dtype, ctx.device);
    scatter_first_token(dh1, dcls.view({ctx.B, ctx.H}));
    dcls = Tensor();
    return self_attention_backward(ctx, l, w, gw, std::move(dh1), rec, tape);
  }
  Tensor dh1 = feed_forward_backward(ctx, l, w, gw, std::move(dout), rec, tape, from_ln2);
  return self_attention_backward(ctx, l, w, gw, std::move(dh1), rec, tape);
}

Tensor encoder_layer_output(const StepContext& ctx, const BertLayerWeights& w, const Tensor& x2) {
  Tensor out = ctx.act({ctx.B, ctx.S, ctx.H});
  Tensor mean = ctx.stats(), rstd = ctx.stats();
  layernorm_forward(out, mean, rstd, x2, Tensor(), w.ln2_w, w.ln2_b, ctx.eps, Tensor());
  return out;
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
                     const Tensor& dlogits, Tape& tape, bool first_token_only) {
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
  if (first_token_only) return dcls.view({B, 1, H});
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
