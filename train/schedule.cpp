#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

// The schedules must round like Python's float arithmetic: no fused multiply-add (GCC contracts
// a*b+c under -march=native with GNU extensions).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace br {

double lr_lambda(SchedulerType type, int64_t step, int64_t warmup_steps, int64_t total_steps,
                 double base_lr) {
  const double s = double(step), w = double(warmup_steps), n = double(total_steps);
  if (type == SchedulerType::constant) return 1.0;
  if (step < warmup_steps) return s / std::max(1.0, w);
  const double progress = (s - w) / std::max(1.0, n - w);
  switch (type) {
    case SchedulerType::constant_with_warmup: return 1.0;
    case SchedulerType::linear: return std::max(0.0, (n - s) / std::max(1.0, n - w));
    case SchedulerType::cosine:
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 0.5 * 2.0 * progress)));
    case SchedulerType::cosine_with_restarts:
      if (progress >= 1.0) return 0.0;
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * std::fmod(1.0 * progress, 1.0))));
    case SchedulerType::polynomial: {
      const double lr_end = 1e-7;
      BR_CHECK(base_lr > lr_end, "lr_lambda: polynomial schedule needs learning_rate > lr_end={}, got {}",
               lr_end, base_lr);
      if (step > total_steps) return lr_end / base_lr;
      const double pct_remaining = 1.0 - (s - w) / (n - w);
      return ((base_lr - lr_end) * pct_remaining + lr_end) / base_lr;
    }
    case SchedulerType::constant: return 1.0;
  }
  fail("lr_lambda: unknown scheduler type {}", int(type));
}

double learning_rate_at(const TrainingArgs& args, int64_t step, int64_t total_steps) {
  BR_CHECK(step >= 0 && total_steps >= 0, "learning_rate_at: step {} and total_steps {} must be >= 0",
           step, total_steps);
  return args.learning_rate * lr_lambda(args.lr_scheduler_type, step,
                                        args.warmup_steps_for(total_steps), total_steps,
                                        args.learning_rate);
}

StepPlan plan_steps(const TrainingArgs& args, int64_t num_examples, int64_t world_size) {
  BR_CHECK(num_examples > 0, "plan_steps: the training set is empty");
  BR_CHECK(world_size >= 1, "plan_steps: world_size must be >= 1, got {}", world_size);
  const int64_t bs = args.per_device_train_batch_size;
  const int64_t per_process = (num_examples + world_size - 1) / world_size;
  StepPlan p;
  p.batches_per_epoch = args.dataloader_drop_last ? per_process / bs : (per_process + bs - 1) / bs;
  BR_CHECK(p.batches_per_epoch > 0,
           "plan_steps: {} examples per process make no full batch of {} with --dataloader_drop_last",
           per_process, bs);
  p.steps_per_epoch = std::max<int64_t>(1, p.batches_per_epoch / args.gradient_accumulation_steps);
  if (args.max_steps > 0) {
    p.max_steps = args.max_steps;
    p.num_epochs = (args.max_steps + p.steps_per_epoch - 1) / p.steps_per_epoch;
  } else {
    p.max_steps = int64_t(std::ceil(args.num_train_epochs * double(p.steps_per_epoch)));
    p.num_epochs = int64_t(std::ceil(args.num_train_epochs));
  }
  p.total_train_batch_size = bs * args.gradient_accumulation_steps * world_size;
  p.num_train_samples = args.max_steps > 0 ? double(args.max_steps * p.total_train_batch_size)
                                           : double(num_examples) * args.num_train_epochs;
  return p;
}

bool is_optimizer_step(int64_t step, int64_t batches_per_epoch, int64_t gradient_accumulation_steps) {
  if ((step + 1) % gradient_accumulation_steps == 0) return true;
  return batches_per_epoch <= gradient_accumulation_steps && step + 1 == batches_per_epoch;
}

double fractional_epoch(int64_t epoch, int64_t step, int64_t batches_per_epoch) {
  return double(epoch) + double(step + 1) / double(batches_per_epoch);
}

StepActions actions_after_step(const TrainingArgs& args, int64_t global_step, int64_t max_steps) {
  StepActions a;
  if (global_step == 1 && args.logging_first_step) a.log = true;
  if (args.logging_strategy == IntervalStrategy::steps && args.logging_steps > 0 &&
      global_step % args.logging_steps == 0)
    a.log = true;
  if (args.evaluation_strategy == IntervalStrategy::steps && args.eval_steps && *args.eval_steps > 0 &&
      global_step % *args.eval_steps == 0) {
    a.evaluate = true;
    if (args.load_best_model_at_end) a.save = true;
  }
  if (!args.load_best_model_at_end && args.save_strategy == IntervalStrategy::steps &&
      args.save_steps > 0 && global_step % args.save_steps == 0)
    a.save = true;
  if (global_step >= max_steps) a.stop = true;
  return a;
}

StepActions actions_at_epoch_end(const TrainingArgs& args) {
  StepActions a;
  a.log = args.logging_strategy == IntervalStrategy::epoch;
  a.evaluate = args.evaluation_strategy == IntervalStrategy::epoch;
  a.save = args.save_strategy == IntervalStrategy::epoch;
  return a;
}

}  // namespace br
