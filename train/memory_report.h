// `bertrazor memory`: the memory of one real training step, read from the tape and the allocators
// (not from a formula), run the way `bertrazor train` runs its steps for the same flags.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "models/tape.h"
#include "models/bert.h"
#include "models/memory_plan.h"
#include "train/args.h"

namespace br {

struct MemoryReport {
  int64_t batch = 0, seq = 0;
  std::vector<SiteRecord> sites;     // every tape entry of the step, in save order
  int64_t saved_activation_bytes = 0;  // bytes the tape held at the end of the forward
  int64_t dense_activation_bytes = 0;  // what every site would hold stored dense (recomputed too)
  // Per encoder layer: the peak bytes of the tape holding a checkpointed layer's recomputed
  // activations in backward (0 for a layer that is not recomputed).
  std::vector<int64_t> recompute_peak_bytes;
  MemoryStats stats;                   // allocator counters over the step (peaks since the start)
  double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
};

// The model `bertrazor memory` measures: the config from config_json_path (with --num_labels),
// the weights of --model_name_or_path when it has model.safetensors (else initialised from
// --seed), on resolved_device, configured for training as train does (configure_for_training).
BertForSequenceClassification memory_model(const CommandArgs& a);

// One training step as train runs it for these arguments (train_step with train_step_options at
// step 0, then an Optimizer step with learning rate 0, so the model is unchanged) on a synthetic
// full-length batch: per_device_train_batch_size x max_seq_length random token ids, no padding
// (or, with `padding` > 0, every sample but the first ending in that many padding tokens).
MemoryReport measure_training_step(BertForSequenceClassification& model, const TrainingArgs& a,
                                   int64_t padding = 0);

// memory_model then measure_training_step: what `bertrazor memory` reports.
MemoryReport memory_report(const CommandArgs& a);

// One row per site (summing layers), then per-layer and total lines.
std::string format_memory_table(const MemoryReport& r, bool per_layer = false);
nlohmann::json memory_report_json(const MemoryReport& r);

// ---- the planner (--max_memory), models/memory_plan.h ----

// The planner's input for these arguments: --max_memory, the batch and sequence length, and the
// sparse sites of a Back Razor plan from --prune_ratio, --backrazor_dtype and
// --backrazor_skip_padding. `padded`: plan for padded batches (train), not memory's full one.
PlannerInput planner_input(const TrainingArgs& a, const BertConfig& c, bool padded);
// plan_memory for the arguments, or a one-line error naming --max_memory and its value: a budget
// below the parameters + gradients + optimizer state, or no plan fitting (with the smallest
// budget that fits, at this batch and at batch 1, and with which plan).
MemoryPlan plan_for_args(const TrainingArgs& a, const BertConfig& c, bool padded);
// Before train writes anything: the config train will build (--config_name or the model's, with
// the GLUE task's labels) planned under --max_memory; throws as plan_for_args. No-op without it.
void check_memory_budget(const TrainingArgs& a);
// --auto_find_batch_size: `a` with the largest per-device train batch b <= the requested one that
// divides batch x gradient_accumulation_steps and whose plan fits --max_memory (the accumulation
// becomes batch x accumulation / b, so the effective batch is kept), and the largest eval batch
// <= the requested one whose forward fits. *note says what it chose. Throws as plan_for_args when
// not even batch 1 fits.
TrainingArgs fit_batch_sizes(const TrainingArgs& a, std::string* note);
// Applies a plan to a model: its policy() and one layer plan per encoder layer.
void apply_memory_plan(BertForSequenceClassification& model, const MemoryPlan& plan);

// `memory --find_max_batch`: under --max_memory, the largest batch (up to
// --per_device_train_batch_size) of each plan kind — dense, every layer checkpointed, balanced,
// every layer checkpointed + balanced (balanced with --prune_ratio and --backrazor_dtype) — and
// the planner's own choice; each row's predicted peak at that batch.
struct MaxBatchRow {
  std::string plan;
  int64_t batch = 0;  // 0: not even batch 1 fits
  int64_t peak = 0;   // predicted at `batch`
};
std::vector<MaxBatchRow> find_max_batches(const TrainingArgs& a, const BertConfig& c);

std::string format_memory_plan(const MemoryPlan& p);
nlohmann::json memory_plan_json(const MemoryPlan& p);

}  // namespace br
