// Where the trainer runs the model: one training micro-batch (train_step) and forward-only passes
// over a dataset (predict, evaluate). Every model forward and backward in train/ is in step.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/tape.h"
#include "models/bert.h"
#include "train/args.h"
#include "train/batch.h"
#include "train/communicator.h"

namespace br {

// What the arguments set on a model before its training steps, for train and memory alike: the
// Back Razor policy (backrazor_policy), the per-layer plans (--gradient_checkpointing,
// --backrazor_layers) or, with --max_memory, the planner's plan (plan_for_args; on CUDA the
// allocator's budget too), and with --bf16, bf16 compute with fp32 master weights.
void configure_for_training(BertForSequenceClassification& model, const TrainingArgs& a);

// The options of the micro-batches before optimizer step `global_step`: dropout on, its masks
// keyed by (--seed, global_step, example), attention dropout as --attention_dropout says.
StepOptions train_step_options(const TrainingArgs& a, int64_t global_step);

struct StepResult {
  double loss = 0;             // the micro-batch's mean loss, before loss_scale
  int64_t saved_bytes = 0;     // what the tape held after the forward: the saved activations
  double forward_seconds = 0;  // forward and loss, until the loss reached the host
  BackwardReport backward;     // e.g. the tape peak of each recomputed (checkpointed) layer
};

// One micro-batch: clears `tape`, runs the forward saving to it under the model's policy, then
// the backward, which adds the gradient of loss_scale * loss to model.grads() and calls
// on_ready(g) as each gradient group is final (BertForSequenceClassification::backward).
StepResult train_step(BertForSequenceClassification& model, const BertBatch& batch,
                      const StepOptions& opt, Tape& tape, float loss_scale = 1.0f,
                      const GradReadyHook& on_ready = {});

// How a dataset is batched and scored.
struct EvalOptions {
  std::string task;         // the GLUE task whose metrics to report; "": accuracy, or mse
  bool regression = false;  // labels are values (one output), not class ids
  int64_t batch_size = 8;   // examples per forward on each process
  int32_t pad_id = 0;       // the tokenizer's [PAD]
};

struct Predictions {
  double loss = 0;                    // mean per-example loss (NaN when any example is unlabeled)
  std::vector<double> preds, labels;  // argmax ids (classification) or values, in dataset order
};

// Forward without dropout, nothing saved, over `ds`, sharded across comm's ranks as HF's
// ShardSampler does; every rank gets the predictions of all examples in dataset order, so the
// metrics equal the single-process ones.
Predictions predict(BertForSequenceClassification& model, const Dataset& ds,
                    const EvalOptions& opt, Communicator& comm);

// predict, then run_glue's metrics, each key followed by `suffix`: eval_loss, eval_<metric> for
// the task's metrics, eval_runtime, eval_samples_per_second and eval_steps_per_second.
nlohmann::ordered_json evaluate(BertForSequenceClassification& model, const Dataset& ds,
                                const EvalOptions& opt, Communicator& comm,
                                const std::string& suffix = "");

}  // namespace br
