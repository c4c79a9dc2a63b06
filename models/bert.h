// BertForSequenceClassification with an explicit forward and backward (no autograd graph): the
// backward reads like the derivation, restoring each saved activation from the tape, where the
// Back Razor policy decides how it was stored.
//
// Shapes: B batch, S sequence, H hidden, N heads, D = H/N head dim, F FFN width, V vocab, C labels.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/backrazor.h"
#include "models/bert_layers.h"
#include "models/config.h"
#include "models/tape.h"

namespace br {

struct BertLayerWeights {
  Tensor q_w, q_b, k_w, k_b, v_w, v_b;  // [H,H], [H]
  Tensor ao_w, ao_b;                    // attention output dense [H,H], [H]
  Tensor ln1_w, ln1_b;                  // [H]
  Tensor ffn1_w, ffn1_b;                // intermediate dense [F,H], [F]
  Tensor ffn2_w, ffn2_b;                // output dense [H,F], [H]
  Tensor ln2_w, ln2_b;                  // [H]
};

// Every parameter of the model (or a same-shaped set of gradients / optimizer moments).
struct BertWeights {
  Tensor word_emb, pos_emb, type_emb;  // [V,H], [P,H], [T,H]
  Tensor emb_ln_w, emb_ln_b;           // [H]
  std::vector<BertLayerWeights> layers;
  Tensor pooler_w, pooler_b;          // [H,H], [H]
  Tensor classifier_w, classifier_b;  // [C,H], [C]

  static BertWeights allocate(const BertConfig& cfg, DType dtype, Device device,
                              MemCategory category);
  // The same tensors as views of one contiguous buffer (*flat), in the order backward finishes
  // them: group 0 = classifier and pooler, group 1 + i = encoder layer L-1-i, group L+1 =
  // embeddings. Group g spans elements [(*group_offsets)[g], (*group_offsets)[g+1]) of *flat; each
  // tensor starts a multiple of 256 bytes into the buffer (so 256-byte aligned on CUDA, whose
  // allocations are) and the gaps stay zero. A data-parallel reducer all-reduces
  // a finished range in place, with no copy into a bucket (DDP's gradient_as_bucket_view).
  static BertWeights allocate_flat(const BertConfig& cfg, DType dtype, Device device,
                                   MemCategory category, Tensor* flat,
                                   std::vector<int64_t>* group_offsets);
  // (Hugging Face name, tensor) for every parameter, in the order of HF's state_dict.
  std::vector<std::pair<std::string, Tensor>> named() const;
  std::vector<Tensor> all() const;
  void zero_() const;
};

// One batch on the model's device. Token tensors are i32 [B,S].
struct BertBatch {
  Tensor input_ids;
  Tensor token_type_ids;
  Tensor attention_mask;  // 1 for real tokens, 0 for padding
  Tensor labels;          // i32 [B] for classification, f32 [B] for regression; may be undefined
  Tensor example_ids;     // i32 [B]: each example's index in its dataset; keys the dropout masks
};

// Called by backward() as soon as a group of gradients (see BertWeights::allocate_flat) is final for
// the micro-batch, groups in increasing order, so the all-reduce of finished groups can overlap the
// rest of backward. The hook must not touch gradients of groups not yet announced.
using GradReadyHook = std::function<void(int group)>;

// Which attention kernel the encoder runs (resolved per step by uses_flash_attention()).
//   automatic:    the fused flash kernel on CUDA when the probs site is stored dense and the head dim
//                 is 64; the materialized kernel otherwise, and always on the CPU.
//   materialized: always stores the probabilities P (what Back Razor prunes).
//   flash:        the fused kernel on any device (the CPU runs its row-by-row reference); a probs
//                 site that is not dense is an error, since the fused kernel never forms P.
// With flash the tape holds q, k, v (their sites' policies), the per-row logsumexp (f32 [B,N,S],
// Site::attn_lse) and the attention output: taken from the attention-output dense input when
// that site is dense, else saved dense as Site::attn_out. The probs site is then not saved.
enum class AttentionKernel : uint8_t { automatic, materialized, flash };
std::string_view attention_kernel_name(AttentionKernel k);
AttentionKernel attention_kernel_from_name(std::string_view name);  // auto|materialized|flash

struct StepOptions {
  bool train = false;              // dropout on, activations saved on the tape
  uint64_t seed = 42;              // dropout stream
  uint32_t step = 0;               // global step (part of the dropout key)
  bool attention_dropout = true;   // upstream BERT; false reproduces the Back Razor fork
  // A batch that is a length group of a larger one (train/batch.h, split_by_length): that batch's
  // padded length, so that sparse sites keep per sample what it would have kept (StepContext::
  // rank_S); 0: this batch's own length.
  int64_t rank_length = 0;
};

// What a training forward did, consumed by its backward: the policy applied to the embedding and
// head sites, and per encoder layer the attention kernel that ran, the policy applied and whether
// it is a checkpoint to recompute.
struct ForwardRecord {
  BackRazorPolicy policy;
  std::vector<LayerRecord> layers;
  bool padding_skipped = false;  // sparse sites ranked real tokens only (padding rows zeroed)
  bool any_flash() const {
    for (const LayerRecord& l : layers)
      if (l.flash) return true;
    return false;
  }
  bool any_checkpoint() const {
    for (const LayerRecord& l : layers)
      if (l.checkpoint) return true;
    return false;
  }
};

// What backward observed, per encoder layer: for a checkpointed layer, the peak bytes of the tape
// that held its recomputed activations, and what those would hold stored dense (0 for a layer that
// was not recomputed).
struct BackwardReport {
  std::vector<int64_t> recompute_peak_bytes;
  std::vector<int64_t> recompute_dense_bytes;
};

struct ForwardResult {
  Tensor logits;         // [B,C] in the parameter dtype
  ForwardRecord record;  // what backward needs to know besides the tape
};

class BertForSequenceClassification {
 public:
  BertForSequenceClassification(BertConfig config, Device device, DType dtype = DType::f32);

  const BertConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }  // parameters (and gradients, optimizer state)

  // Activation dtype. Default: the parameter dtype. bf16 (CUDA, f32 parameters only) is mixed
  // precision with fp32 master weights: each forward casts the linear weights and biases to bf16
  // copies (MemCategory::workspace, compute_param_bytes()); embeddings, activations and saved
  // activations are bf16; embedding tables and LayerNorm weights stay f32 (the kernels read them
  // directly), LayerNorm statistics are f32, logits are cast to f32 before they are returned, and
  // every gradient accumulates into the f32 grads(), so AdamW and clipping are unchanged.
  void set_compute_dtype(DType compute);
  DType compute_dtype() const { return compute_dtype_; }
  // Bytes of the bf16 parameter copies (0 when none): bf16 compute's, or the linear weight
  // matrices' in the CPU's bf16 product mode (set_cpu_bf16_matmul), made by the first forward in
  // that mode.
  int64_t compute_param_bytes() const;

  // The materialized attention's bound on the dense probabilities of one chunk of samples
  // (kAttentionWorkspaceBytes by default; models/bert_layers.h). No result depends on it.
  void set_attention_workspace(int64_t bytes) { attention_workspace_ = bytes; }
  int64_t attention_workspace() const { return attention_workspace_; }
  // The feed-forward backward's bound on one chunk's [b,S,F] buffer (kFfnWorkspaceBytes by
  // default; models/bert_layers.h). The weight gradients' rounding depends on it, no plan does.
  void set_ffn_workspace(int64_t bytes) { ffn_workspace_ = bytes; }
  int64_t ffn_workspace() const { return ffn_workspace_; }
  void set_attention_kernel(AttentionKernel k) { attention_kernel_ = k; }
  AttentionKernel attention_kernel() const { return attention_kernel_; }
  // Whether the next forward runs the fused kernel, given the device, head dim and policy; throws
  // when AttentionKernel::flash is set with a probs site that is not dense.
  bool uses_flash_attention() const;
  bool uses_flash_attention(const BackRazorPolicy& layer_policy) const;  // for one layer's policy

  // HF initialisation (normal(0, initializer_range) weights, zero biases, unit LayerNorm, zero
  // padding row), drawn from a Philox stream keyed by `seed`.
  void init_weights(uint64_t seed);
  // Only the classifier head, as HF initialises a head missing from a checkpoint.
  void init_classifier(uint64_t seed);
  void init_pooler(uint64_t seed);

  // logits [B,C] and the record of what ran. With a tape, saves what backward needs under the Back
  // Razor policy.
  ForwardResult forward(const BertBatch& batch, const StepOptions& opt, Tape* tape);
  // Mean cross-entropy (num_labels > 1) or MSE (num_labels == 1) as an f32 [1] tensor, and its
  // gradient with respect to the logits for a loss scaled by `dloss`.
  Tensor loss(const Tensor& logits, const Tensor& labels) const;
  Tensor loss_backward(const Tensor& logits, const Tensor& labels, float dloss) const;
  // Accumulates parameter gradients into grads(), consuming the tape and the forward's record;
  // calls on_ready(g) for every gradient group g once its gradients are final.
  BackwardReport backward(const BertBatch& batch, const StepOptions& opt, Tape& tape,
                          const ForwardRecord& record, const Tensor& dlogits,
                          const GradReadyHook& on_ready = {});

  BertWeights& params() { return params_; }
  BertWeights& grads() { return grads_; }
  // Zeros grads() for the next accumulation, as grads().zero_() does but without rewriting the
  // whole word-embedding gradient (vocab × hidden: half of MiniLM's and a quarter of bert-base's
  // gradient bytes): of that table, only the rows backward() wrote since the last zero_grad() (the
  // token ids it saw) are zeroed. Whatever else writes into grads() (a data-parallel all-reduce puts
  // other ranks' rows there) must call note_grads_written() first; the next zero_grad() then zeros
  // everything. On CUDA every zero_grad() zeros everything.
  void zero_grad();
  void note_grads_written() { word_rows_.all = true; }
  // Every gradient as one contiguous buffer (BertWeights::allocate_flat): num_grad_groups() groups,
  // group g at elements [grad_group_offset(g), grad_group_offset(g + 1)); grad_group_offsets() is
  // all num_grad_groups() + 1 of those offsets, from 0 to grads_flat().numel().
  const Tensor& grads_flat() const { return grads_flat_; }
  int num_grad_groups() const { return config_.num_hidden_layers + 2; }
  int64_t grad_group_offset(int group) const;
  const std::vector<int64_t>& grad_group_offsets() const { return grad_group_offsets_; }
  const BertWeights& params() const { return params_; }
  // The save policy of the embedding and head sites, and of every encoder layer without a plan.
  BackRazorPolicy& policy() { return policy_; }
  const BackRazorPolicy& policy() const { return policy_; }
  // Per-layer plans (models/backrazor.h): empty = every layer under policy(), checkpointed when
  // gradient checkpointing is on; else one plan per encoder layer.
  std::vector<LayerPlan>& layer_plans() { return layer_plans_; }
  const std::vector<LayerPlan>& layer_plans() const { return layer_plans_; }
  // Exact gradient checkpointing of every layer that has no plan of its own (HF's
  // gradient_checkpointing): each keeps only its input and is recomputed in backward.
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }
  LayerPlan plan_for(int layer) const;
  // Whether a sparse site ranks padding too (skip_padding off): what it keeps then depends on how
  // the batch is padded, so a batch split by length (StepOptions::rank_length) would change it.
  bool ranks_padding() const;

 private:
  StepContext context(const BertBatch& batch, const StepOptions& opt) const;
  // f32 [B,S]: 0 real, lowest() padded; *has_padding says whether any position is padded.
  Tensor additive_mask(const BertBatch& batch, bool* has_padding = nullptr) const;
  // The weights the step computes with: params_ itself, or (bf16 compute) params_ with every linear
  // weight and bias replaced by its bf16 copy, or (the CPU's bf16 product mode, cpu_bf16_matmul())
  // with every linear weight matrix replaced by its bf16 copy; refreshed from params_ when
  // `refresh`.
  const BertWeights& compute_weights(bool refresh);

  BertConfig config_;
  Device device_;
  DType dtype_;
  DType compute_dtype_;
  AttentionKernel attention_kernel_ = AttentionKernel::automatic;
  int64_t attention_workspace_ = kAttentionWorkspaceBytes;
  int64_t ffn_workspace_ = kFfnWorkspaceBytes;
  BertWeights params_;
  BertWeights compute_params_;  // bf16 compute only: see compute_weights()
  BertWeights grads_;
  Tensor grads_flat_;
  // The word-embedding gradient rows written since the last zero_grad(): see zero_grad().
  struct DirtyRows {
    bool all = true;             // every row may be non-zero (the state after allocation)
    std::vector<uint8_t> seen;   // [vocab] 1 where listed
    std::vector<int32_t> rows;   // listed rows, each once
  } word_rows_;
  void note_word_rows(const Tensor& input_ids);
  std::vector<int64_t> grad_group_offsets_;
  BackRazorPolicy policy_;
  std::vector<LayerPlan> layer_plans_;
  bool gradient_checkpointing_ = false;
};

}  // namespace br
