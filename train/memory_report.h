// Memory of one real training step, read from the tape and the allocators (not from a formula).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "models/tape.h"
#include "models/bert.h"

namespace br {

struct MemoryReport {
  int64_t batch = 0, seq = 0;
  std::vector<SiteRecord> sites;     // every tape entry of the step, in save order
  int64_t saved_activation_bytes = 0;  // bytes the tape held at the end of the forward
  int64_t dense_activation_bytes = 0;  // what the same entries would hold stored dense
  MemoryStats stats;                   // allocator counters over the step (peaks since the start)
  double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
};

// Runs forward, backward and an AdamW step on a synthetic full-length batch (random token ids,
// no padding) with the model's current policy, on the model's device.
MemoryReport measure_training_step(BertForSequenceClassification& model, int64_t batch, int64_t seq,
                                   uint64_t seed = 0);

// One row per site (summing layers), then per-layer and total lines.
std::string format_memory_table(const MemoryReport& r, bool per_layer = false);
nlohmann::json memory_report_json(const MemoryReport& r);

}  // namespace br
