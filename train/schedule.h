// Step arithmetic, LR schedules and logging/eval/save cadence of HF's Trainer (4.11), without the
// model: shared/reference/hf-run-glue-spec.md §2.2-§2.4.
#pragma once
#include <cstdint>

#include "train/args.h"

namespace br {

// LambdaLR factor of HF's schedules at scheduler step s (= optimizer steps taken so far), with
// W warmup steps and N total steps:
//   warmup (all but constant):  s < W  ->  s / max(1, W)
//   linear:                max(0, (N - s) / max(1, N - W))
//   cosine:                max(0, 0.5 (1 + cos(pi * 2 * 0.5 * p))),  p = (s - W) / max(1, N - W)
//   cosine_with_restarts:  p >= 1 -> 0, else max(0, 0.5 (1 + cos(pi * ((1 * p) mod 1))))
//   polynomial:            s > N -> lr_end / base, else ((base - lr_end) (1 - p)^1 + lr_end) / base
//   constant:              1;   constant_with_warmup: 1 after warmup
// lr_end = 1e-7 (polynomial needs base_lr > lr_end).
double lr_lambda(SchedulerType type, int64_t step, int64_t warmup_steps, int64_t total_steps,
                 double base_lr);

// The LR optimizer step `step` (0-based) uses: base_lr * lr_lambda(step). The LR HF logs after
// global_step k is learning_rate_at(args, k, total). Warmup = args.warmup_steps_for(total_steps).
double learning_rate_at(const TrainingArgs& args, int64_t step, int64_t total_steps);

// Trainer.train's step/epoch arithmetic (spec §2.3) for `num_examples` training rows split over
// `world_size` processes (DistributedSampler pads to ceil(N/W) per process).
struct StepPlan {
  int64_t batches_per_epoch = 0;  // len(train_dataloader) per process
  int64_t steps_per_epoch = 0;    // max(1, batches_per_epoch / gradient_accumulation_steps)
  int64_t max_steps = 0;          // optimizer steps of the whole run
  int64_t num_epochs = 0;         // epochs the loop starts (training stops at max_steps)
  int64_t total_train_batch_size = 0;  // per_device * grad_accum * world_size
  // What train_samples_per_second divides by, as Trainer.train counts it: max_steps *
  // total_train_batch_size when --max_steps is set, else num_examples * num_train_epochs (the
  // fractional epochs as given; no sampler padding).
  double num_train_samples = 0;
};
StepPlan plan_steps(const TrainingArgs& args, int64_t num_examples, int64_t world_size = 1);

// True when micro-batch `step` (0-based within the epoch) ends an optimizer step: every
// grad_accum micro-batches, and at an epoch's last micro-batch only when the epoch has
// <= grad_accum micro-batches.
bool is_optimizer_step(int64_t step, int64_t batches_per_epoch, int64_t gradient_accumulation_steps);

// state.epoch after micro-batch `step` of epoch `epoch`: epoch + (step + 1) / batches_per_epoch.
double fractional_epoch(int64_t epoch, int64_t step, int64_t batches_per_epoch);

// What DefaultFlowCallback asks for after an optimizer step or at an epoch's end.
struct StepActions {
  bool log = false;
  bool evaluate = false;
  bool save = false;
  bool stop = false;
};
StepActions actions_after_step(const TrainingArgs& args, int64_t global_step, int64_t max_steps);
StepActions actions_at_epoch_end(const TrainingArgs& args);

}  // namespace br
