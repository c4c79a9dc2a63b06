// `bertrazor memory`: the memory of one real training step, read from the tape and the allocators
// (not from a formula), run the way `bertrazor train` runs its steps for the same flags.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "models/tape.h"
#include "models/bert.h"
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
// full-length batch: per_device_train_batch_size x max_seq_length random token ids, no padding.
MemoryReport measure_training_step(BertForSequenceClassification& model, const TrainingArgs& a);

// memory_model then measure_training_step: what `bertrazor memory` reports.
MemoryReport memory_report(const CommandArgs& a);

// One row per site (summing layers), then per-layer and total lines.
std::string format_memory_table(const MemoryReport& r, bool per_layer = false);
nlohmann::json memory_report_json(const MemoryReport& r);

}  // namespace br
