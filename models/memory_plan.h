// The memory planner (issue 12): a byte model of one whole fp32 training step — parameters,
// gradients, optimizer state, the batch, saved activations and the transient buffers of forward and
// backward, as the CPU allocator counts them — and the rule that picks a per-layer plan (dense,
// exact gradient checkpointing, Back Razor) under a byte budget (`--max_memory`).
//
// The byte model replays the step's allocations (models/bert_layers.cpp, bert_step.cpp,
// models/tape.cpp) on counters instead of running kernels: every Tensor the step allocates, in the
// order it allocates them, freed where its last holder lets go, with the tape's save modes (dense
// adopts the tensor, low precision casts a copy, sparse packs mask + k values, recompute holds
// nothing, a checkpoint holds the layer input and recomputes the layer onto a tape of its own).
// So its peak is the allocator's total_peak of the step to a few hundred bytes (the loss scalars),
// on the CPU. The CUDA caching allocator rounds blocks (512 B / 2 MiB) and the fused flash kernel
// (CUDA, dense probs) saves a logsumexp instead of P: the model does not cover those.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/backrazor.h"
#include "models/bert_layers.h"
#include "models/config.h"

namespace br {

// "16GiB", "1.5GB", "800 MB", "4096", "2KiB": bytes. Units B, KB/MB/GB/TB (1000-based) and
// KiB/MiB/GiB/TiB (1024-based), any case for the prefix letter, optional space, a decimal number;
// no unit means bytes. Throws br::Error saying what is wrong with `text` (the caller names its flag).
int64_t parse_byte_size(std::string_view text);
std::string format_bytes(int64_t bytes);  // "1.50 GiB (1610612736 B)"

// What a training step shapes, beside the config: the batch and the plan.
struct SavePlan {
  BackRazorPolicy policy;        // embedding and head sites (the model's policy())
  std::vector<LayerPlan> layers;  // one per encoder layer
  // The batch has padding and sparse sites skip it: the step then holds the token mask (i32 [B,S]).
  bool padded = false;
  // The materialized attention's chunk bound (models/bert_layers.h; the model's
  // attention_workspace()).
  int64_t attention_workspace = kAttentionWorkspaceBytes;
  // The feed-forward backward's chunk bound (the model's ffn_workspace()).
  int64_t ffn_workspace = kFfnWorkspaceBytes;
};

// The predicted bytes of one training step (forward, loss, backward; the optimizer allocates
// nothing), fp32 parameters and activations, materialized attention.
struct StepBytes {
  int64_t parameters = 0, gradients = 0, optimizer_state = 0;
  int64_t inputs = 0;             // the batch: ids, token types, mask, labels, example ids
  int64_t saved_activations = 0;  // what the tape holds at the end of the forward
  int64_t recompute_peak = 0;     // the largest tape of a recomputed (checkpointed) layer
  int64_t peak = 0;               // the step's total peak, persistent bytes included
  int64_t saved_at_peak = 0;      // tape bytes (both tapes) at the moment of the peak
  std::string peak_at;            // where the peak happens ("backward layer 5", ...)
  int64_t persistent() const { return parameters + gradients + optimizer_state + inputs; }
  int64_t transient_at_peak() const { return peak - persistent() - saved_at_peak; }
};

int64_t parameter_count(const BertConfig& c);
StepBytes predict_step_bytes(const BertConfig& c, int64_t batch, int64_t seq, const SavePlan& plan);
// Forward-only (evaluation) peak at `batch`, persistent bytes included (no tape).
int64_t predict_eval_bytes(const BertConfig& c, int64_t batch, int64_t seq);

// FLOPs of one encoder layer's forward (the extra work of recomputing it), and of a whole dense
// step (forward + backward ≈ 3 forwards).
double layer_forward_flops(const BertConfig& c, int64_t batch, int64_t seq);
double step_flops(const BertConfig& c, int64_t batch, int64_t seq);

// Prior gradient damage of saving one site (at every layer) in a mode: the relative error
// ||g - g_dense|| / ||g_dense|| of the whole model's gradient, from bench_grad_fidelity's single-site runs
// (models/grad_damage_prior.inc, with the command that made it). Damage of a plan = the sum over
// its non-exact sites (an additive prior). 0 for dense and for ffn2_input=recompute over a dense
// GELU input.
double site_damage_prior(Site s, SaveMode mode);

struct PlannerInput {
  BertConfig config;
  int64_t batch = 8, seq = 128;
  int64_t budget = 0;      // bytes the step's peak must stay within
  double prune_ratio = 0.8;  // of the sparse sites Back Razor plans use
  DType value_dtype = DType::f16;
  bool skip_padding = true;
  bool padded = true;  // plan for padded batches (train); memory's synthetic batch has none
};

enum class PlanKind : uint8_t { dense, exact, backrazor };
std::string_view plan_kind_name(PlanKind k);

struct MemoryPlan {
  PlanKind kind = PlanKind::dense;
  SavePlan plan;
  StepBytes bytes;
  int checkpointed_layers = 0;  // layers 0 .. checkpointed_layers - 1
  bool ffn2_recompute = false;  // FFN2 input recomputed from the GELU input in every layer
  double extra_flops = 0;       // recompute work over the dense step
  double dense_step_flops = 0;
  double damage = 0;            // prior gradient damage (0 for exact plans)
  std::string description;      // describe_layer_plans + the head policy
  std::string rejected;         // why the next cheaper plan did not fit ("" for dense)
  int64_t budget = 0;
};

// The rule, in order: (a) dense if it fits; (b) else the exact plan with the least recompute that
// fits: k checkpointed layers for k = 0..L, the bottom ones (their recompute runs last in
// backward, when the tape holds least), each first without and then with ffn2_input=recompute;
// (c) else the Back Razor plan of least prior damage that fits, among uniform per-site choices
// (fp16 copies first, largest sites first; then every subset of sparse sites over a dense or an
// fp16 base; backrazor_candidates in the .cpp), every layer checkpointed, then reduced to the
// fewest checkpointed layers that still fit with that policy; (d) nothing fits: nullopt, and
// *smallest (when given) is the smallest plan (every site sparse in every checkpointed layer).
std::optional<MemoryPlan> plan_memory(const PlannerInput& in, MemoryPlan* smallest = nullptr);

// The largest batch in [1, max_batch] whose plan_memory fits (0: none), and that plan.
int64_t find_max_batch(PlannerInput in, int64_t max_batch, MemoryPlan* plan = nullptr);

}  // namespace br
