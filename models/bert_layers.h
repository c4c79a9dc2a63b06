// The pieces of one BERT step, each a forward/backward pair that reads like its derivation:
// embeddings, one encoder layer (post-LN self-attention block, then feed-forward block), and the
// pooler + classifier head. BertForSequenceClassification::forward/backward compose them; a caller
// that recomputes a layer in backward (gradient checkpointing) runs encoder_layer_forward again
// with the same StepContext and a tape of its own.
//
// Shapes: B batch, S sequence, H hidden, N heads, D = H/N head dim, F FFN width, C labels.
#pragma once
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "core/tensor.h"
#include "models/backrazor.h"
#include "models/config.h"
#include "models/tape.h"

namespace br {

struct BertWeights;
struct BertLayerWeights;

// Dropout site ids (DropoutKey::site): three per encoder layer, plus embeddings and classifier.
enum : uint32_t { kDropAttention = 0, kDropAttnOut = 1, kDropFfnOut = 2 };
constexpr uint32_t kDropEmbeddings = 0xfffff000u;
constexpr uint32_t kDropClassifier = 0xfffff001u;
inline uint32_t dropout_site(int layer, uint32_t which) { return uint32_t(layer) * 4u + which; }

// The materialized attention goes through the batch in chunks of samples, so that only one
// chunk's dense probabilities [b, N, S, S] exist at a time: in forward before they are packed (or
// when nothing keeps them: evaluation, a checkpointed layer's first forward), in backward unpacked
// from the tape. Not when the tape keeps P itself (dense): then P is whole anyway. A chunk is the
// most samples whose P fits the workspace bound, at least one: with the default 16 MiB, bert-base at
// seq 512 works on one sample (12 MiB) at a time instead of 96 MiB for batch 8, and seq 128 batches
// of up to 21 samples stay whole. Every (sample, head) is independent in the kernels, so the chunk
// size changes no bit of any result, only the transient bytes (models/memory_plan.cpp counts them).
constexpr int64_t kAttentionWorkspaceBytes = int64_t(16) << 20;
// The most of B samples of `per_sample` bytes each that fit `workspace`, at least one.
inline int64_t samples_per_chunk(int64_t B, int64_t per_sample, int64_t workspace) {
  const int64_t fit = per_sample > 0 ? workspace / per_sample : B;
  return fit < 1 ? 1 : fit > B ? B : fit;
}
inline int64_t attention_chunk_samples(int64_t B, int64_t N, int64_t S, int64_t elem_bytes,
                                       int64_t workspace) {
  return samples_per_chunk(B, N * S * S * elem_bytes, workspace);
}

// The feed-forward backward goes through the batch in chunks of samples when one [B,S,F]
// activation is larger than this bound: each chunk's FFN2 and GELU backward and FFN1 input
// gradient run on [b,S,F] buffers, its saved inputs restored chunk by chunk when the tape keeps
// copies (sparse, low precision). The weight and bias gradients then sum chunk after chunk, which
// changes their rounding against one whole-batch product, so the chunk size depends on the shapes
// only (never on the save policy or on checkpointing): every plan of a step gets the same bits.
// bert-base at seq 512 works on one sample ([512, 3072] fp32, 6.3 MB) at a time; MiniLM at seq
// 128 on 10 samples; short sequences stay whole.
constexpr int64_t kFfnWorkspaceBytes = int64_t(8) << 20;
inline int64_t ffn_chunk_samples(int64_t B, int64_t S, int64_t F, int64_t elem_bytes,
                                 int64_t workspace) {
  return samples_per_chunk(B, S * F * elem_bytes, workspace);
}

// What every piece of one step shares: shapes, dtypes, dropout, the batch's masks.
struct StepContext {
  int64_t B = 0, S = 0, H = 0, N = 0, D = 0, F = 0;
  DType act_dtype = DType::f32;    // activations (the model's compute dtype)
  DType model_dtype = DType::f32;  // parameters; LayerNorm statistics are f64 for f64, else f32
  Device device = Device::cpu;
  float p_hidden = 0, p_attn = 0, p_cls = 0;  // dropout probabilities (0 outside training)
  float scale = 1;                            // attention scale D^-0.5
  double eps = 1e-12;                         // LayerNorm epsilon
  uint64_t seed = 0;                          // dropout stream
  uint32_t step = 0;
  Tensor example_ids;  // i32 [B]: key the dropout masks
  Tensor mask;         // f32 [B,S] additive attention mask (0 real, lowest() padded)
  Tensor padding;      // i32 [B,S] token mask when sparse sites skip padding, else undefined
  int64_t attention_workspace = kAttentionWorkspaceBytes;  // bytes of P per attention chunk
  int64_t ffn_workspace = kFfnWorkspaceBytes;              // bytes of [b,S,F] per FFN chunk
  // A batch split by length (train/batch.h, split_by_length): the padded length of the whole
  // batch, so that each sparse site keeps per sample what the whole batch would have kept; 0: S.
  int64_t rank_S = 0;
  uint32_t dropout_length = 0;  // DropoutKey::length of every site (attention's row stride)

  // Samples per materialized-attention chunk (attention_chunk_samples).
  int64_t attention_chunk() const {
    return attention_chunk_samples(B, N, S, int64_t(dtype_size(act_dtype)), attention_workspace);
  }
  // Samples per feed-forward backward chunk (ffn_chunk_samples).
  int64_t ffn_chunk() const {
    return ffn_chunk_samples(B, S, F, int64_t(dtype_size(act_dtype)), ffn_workspace);
  }

  // The kept count per sample of a sparse save of `site` with n elements per sample: 0 (the
  // tape's own, backrazor_keep_count(n)) unless rank_S is set, and then that of the sample padded
  // to rank_S (its padding zeroed, so the same values are kept), at most n. `seq_dims`: how many
  // of the sample's dimensions are S long (-1: the site's usual shape, [N,S,S] for the
  // probabilities, none for the head's, else one).
  int64_t keep(Site site, const SitePolicy& policy, int64_t n, int seq_dims = -1) const;

  Tensor act(const Shape& s) const { return Tensor::empty(s, act_dtype, device); }
  Tensor stats() const;  // a mean or rstd buffer of B*S rows
  DropoutKey key(uint32_t site) const { return DropoutKey{seed, step, site, dropout_length}; }
};

// What one encoder layer's forward did, read by its backward (never the live settings).
struct LayerRecord {
  BackRazorPolicy policy;  // the save mode applied to each of the layer's sites
  bool flash = false;      // the fused attention kernel ran: lse saved, probabilities never formed
  bool checkpoint = false;  // only the input was saved (Site::layer_input): recompute in backward
  // checkpoint keeping its output (LayerPlan::keeps_output): the LN2 input and statistics are on
  // the step's tape, and the next layer's input is their LayerNorm, recomputed
  bool keeps_output = false;
  // Past the attention block only each sample's first ([CLS]) row: the feed-forward block runs on
  // B rows instead of B·S, its sites saved as [B,1,·], and the layer's output is [B,1,H]. The
  // last layer's, as the head reads [CLS] alone and every op after the attention is per row: the
  // other rows' outputs are never read and their gradients are exactly zero. Not when a sparse
  // site there ranks the whole layer's values (first_token_trainable). In a forward without a
  // tape (evaluation) the attention block too runs for the [CLS] queries only.
  bool first_token = false;
  // With first_token in training, the attention block too runs for the [CLS] queries only (keys
  // and values of every row): its sites q, probs, attn_out_input and ln1_input saved as [B,N,1,D],
  // [B,N,1,S], [B,1,H]. Not with flash, on CUDA (whose kernels need every query), or where one
  // of those sites is sparse and ranks every row (first_token_queries_trainable).
  bool first_token_queries = false;
  // flash with a non-dense attention-output dense input: the attention output is saved apart.
  bool attn_out_saved() const { return flash && policy[Site::attn_out_input].mode != SaveMode::dense; }
  bool ffn2_recomputed() const { return policy[Site::ffn2_input].mode == SaveMode::recompute; }
};

// Whether a training step's last layer runs its feed-forward block on the [CLS] rows only
// (LayerRecord::first_token) under `layer_policy`: when none of that block's sites (ffn1_input,
// gelu_input, ffn2_input, ln2_input) is sparse, which changes no gradient; or when sparse sites rank
// only rows that hold gradient (`skip_padding`: padding elsewhere, here the rows past [CLS]), so
// they keep the top of the [CLS] rows. A forward without a tape always does.
bool first_token_trainable(const BackRazorPolicy& layer_policy, bool skip_padding);
// The same for the attention block's query-side sites (q, probs, attn_out_input, ln1_input):
// whether a training step's last layer may run its attention for the [CLS] queries only.
bool first_token_queries_trainable(const BackRazorPolicy& layer_policy, bool skip_padding);

// Saves x on the tape under (layer, site) with `policy`. Sparse saves first zero x's padding rows in
// place when ctx.padding is set (padding holds no gradient, so the top-k goes to real tokens).
void save_site(Tape& tape, const StepContext& ctx, int layer, Site site, const Tensor& x,
               const SitePolicy& policy, int seq_dims = -1);

// Embeddings: h = dropout(LN(word[ids] + pos[0..S) + type[tt])) [B,S,H]. Saves the LN input under
// the policy's emb_ln_input and its statistics dense. backward: embedding table gradients (+=).
Tensor embeddings_forward(const StepContext& ctx, const BertWeights& P, const Tensor& input_ids,
                          const Tensor& token_type_ids, const BertConfig& c,
                          const BackRazorPolicy& policy, Tape* tape);
void embeddings_backward(const StepContext& ctx, const BertWeights& P, BertWeights& g,
                         const Tensor& dh, const Tensor& input_ids, const Tensor& token_type_ids,
                         const BertConfig& c, Tape& tape);

// What an encoder layer's forward forms beyond what it saves: its output whole (the step's
// forward); only by chunks, never whole (a recompute, which needs only what the layer saves); or
// nothing past the FFN2 input (the recompute of a checkpoint that kept its output: FFN2, its
// dropout and LN2 are not run again, as their backward reads the step's tape).
enum class LayerOutput { whole, chunks, none };

// Encoder layer l (post-LN): h1 = LN1(dropout(Attn(x) W_ao) + x), out = LN2(dropout(gelu(h1 W_1)
// W_2) + h1). x is taken by value so the tape can adopt it as the attention input; backward takes
// dout by value and frees it once the FFN block is done. backward returns dx and accumulates the
// layer's parameter gradients into gw. forward returns the output for LayerOutput::whole, else an
// undefined tensor. `ln2_tape`, when given, takes the LN2 input (dense) and its statistics instead
// of `tape` (a checkpoint keeping its output saves those and nothing else).
Tensor encoder_layer_forward(const StepContext& ctx, int l, const BertLayerWeights& w, Tensor x,
                             const LayerRecord& rec, Tape* tape,
                             LayerOutput output = LayerOutput::whole, Tape* ln2_tape = nullptr);
// The layer's last LayerNorm backward alone: dout -> the LN2 input gradient, from the LN2 input
// and statistics on `tape` under `policy`; the LN2 weight gradients accumulate into gw.
Tensor encoder_layer_ln2_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                                  BertLayerWeights& gw, Tensor dout, const SitePolicy& policy,
                                  Tape& tape);
// With `from_ln2`, dout is already the LN2 input gradient (encoder_layer_ln2_backward ran).
Tensor encoder_layer_backward(const StepContext& ctx, int l, const BertLayerWeights& w,
                              BertLayerWeights& gw, Tensor dout, const LayerRecord& rec,
                              Tape& tape, bool from_ln2 = false);
// The next layer's input from layer l's kept output: LN2 of the LN2 input (bit-identical to the
// forward's, which computed the same LayerNorm of the same sum).
Tensor encoder_layer_output(const StepContext& ctx, const BertLayerWeights& w, const Tensor& x2);

// Head: logits = classifier(dropout(tanh(pooler(h[:,0])))) [B,C]. backward returns dh [B,S,H]
// (zero but for the [CLS] rows) and accumulates the pooler and classifier gradients. h may be
// [B,1,H] (a last layer that formed its [CLS] rows only).
Tensor head_forward(const StepContext& ctx, const BertWeights& P, Tensor h, int64_t C,
                    const BackRazorPolicy& policy, Tape* tape);
// With `first_token_only` (the last layer's LayerRecord::first_token) dh is [B,1,H], the [CLS] rows.
Tensor head_backward(const StepContext& ctx, const BertWeights& P, BertWeights& g,
                     const Tensor& dlogits, Tape& tape, bool first_token_only = false);

// i32 [B,S] holding 0..S-1 in every row.
Tensor position_ids(int64_t B, int64_t S, Device device);
// out[b,:] = h[b,0,:] for h [B,S,H]; and its adjoint into a zeroed dh: dh[b,0,:] = dout[b,:] (the
// other rows are left as they are).
void gather_first_token(const Tensor& out, const Tensor& h);
void scatter_first_token(const Tensor& dh, const Tensor& dout);

}  // namespace br
