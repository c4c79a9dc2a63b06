#include "train/step.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/allocator.h"
#include "kernels/cast.h"
#include "kernels/gemm.h"
#include "train/eval_shard.h"
#include "train/memory_report.h"
#include "train/metrics.h"
#include "train/progress.h"

namespace br {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Per-example loss from its logits, in double: cross-entropy, or squared error for regression.
double example_loss(const double* logits, int64_t C, const Example& e, bool regression) {
  if (regression) return (logits[0] - double(e.value)) * (logits[0] - double(e.value));
  double m = logits[0];
  for (int64_t c = 1; c < C; ++c) m = std::max(m, logits[c]);
  double z = 0;
  for (int64_t c = 0; c < C; ++c) z += std::exp(logits[c] - m);
  return m + std::log(z) - logits[e.label];
}
}  // namespace

void configure_for_training(BertForSequenceClassification& model, const TrainingArgs& a) {
  model.policy() = backrazor_policy(a);
  model.set_gradient_checkpointing(a.gradient_checkpointing);
  model.layer_plans().clear();
  if (!a.backrazor_layers.empty())
    model.layer_plans() = layer_plans(a, model.config().num_hidden_layers);
  // --bf16: bf16 compute with fp32 master weights on CUDA; on the CPU, fp32 activations with every
  // product's operands rounded to bf16 and accumulated in fp32 (process-wide, kernels/gemm.h).
  if (a.bf16 && model.device() == Device::cuda) model.set_compute_dtype(DType::bf16);
  if (model.device() == Device::cpu) set_cpu_bf16_matmul(a.bf16);
  if (a.max_memory) {
    apply_memory_plan(model, plan_for_args(a, model.config(), true));
    // The allocator refuses what would exceed the budget, so a wrong plan fails loudly (CUDA).
    if (model.device() == Device::cuda) set_memory_budget(Device::cuda, parse_byte_size(*a.max_memory));
  }
}

StepOptions train_step_options(const TrainingArgs& a, int64_t global_step) {
  return StepOptions{true, uint64_t(a.seed), uint32_t(global_step), a.attention_dropout};
}

StepResult train_step(BertForSequenceClassification& model, const BertBatch& batch,
                      const StepOptions& opt, Tape& tape, float loss_scale,
                      const GradReadyHook& on_ready) {
  StepResult r;
  const double t0 = now_seconds();
  tape.clear();
  ForwardResult fwd = model.forward(batch, opt, &tape);
  r.saved_bytes = tape.bytes();
  r.loss =
      cast(model.loss(fwd.logits, batch.labels).to(Device::cpu), DType::f64).to_vector<double>()[0];
  r.forward_seconds = now_seconds() - t0;
  r.backward = model.backward(batch, opt, tape, fwd.record,
                              model.loss_backward(fwd.logits, batch.labels, loss_scale), on_ready);
  return r;
}

Predictions predict(BertForSequenceClassification& model, const Dataset& ds,
                    const EvalOptions& opt, Communicator& comm) {
  const int64_t n = int64_t(ds.examples.size()), bs = opt.batch_size;
  const int64_t C = model.config().num_labels();
  std::vector<int64_t> mine = shard_eval_indices(n, bs, comm.world_size(), comm.rank());
  // Batches of similar lengths (longest first), each example's logits put back at its shard
  // position: a batch pads to its longest, so this runs about the real tokens only.
  std::vector<int64_t> lengths;
  for (int64_t i : mine) lengths.push_back(int64_t(ds.encodings[size_t(i)].input_ids.size()));
  const std::vector<size_t> order = longest_first(lengths);
  std::vector<double> local(mine.size() * size_t(C));
  StepOptions eval_step;  // no dropout, nothing saved
  for (size_t start = 0; start < mine.size(); start += size_t(bs)) {
    const size_t end = std::min(mine.size(), start + size_t(bs));
    std::vector<int64_t> idx;
    for (size_t j = start; j < end; ++j) idx.push_back(mine[order[j]]);
    BertBatch b = collate(ds, idx, model.device(), opt.regression, opt.pad_id);
    Tensor logits = model.forward(b, eval_step, nullptr).logits;
    std::vector<float> l = cast(logits.to(Device::cpu), DType::f32).to_vector<float>();
    for (size_t j = start; j < end; ++j)
      std::copy_n(l.begin() + int64_t((j - start) * size_t(C)), C,
                  local.begin() + int64_t(order[j] * size_t(C)));
  }
  std::vector<double> all = comm.world_size() == 1 ? local : gather_eval_outputs(comm, local, n, bs, C);
  Predictions p;
  double loss_sum = 0;
  bool labeled = true;
  for (int64_t i = 0; i < n; ++i) {
    const double* l = all.data() + i * C;
    const Example& e = ds.examples[size_t(i)];
    if (opt.regression) {
      p.preds.push_back(double(float(l[0])));
    } else {
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (l[c] > l[best]) best = c;
      p.preds.push_back(double(best));
    }
    p.labels.push_back(opt.regression ? double(e.value) : double(e.label));
    labeled = labeled && e.labeled();
    if (labeled) loss_sum += example_loss(l, C, e, opt.regression);
  }
  p.loss = labeled && n ? loss_sum / double(n) : NAN;
  return p;
}

nlohmann::ordered_json evaluate(BertForSequenceClassification& model, const Dataset& ds,
                                const EvalOptions& opt, Communicator& comm, const std::string& suffix) {
  const double t0 = now_seconds();
  Predictions p = predict(model, ds, opt, comm);
  const double runtime = now_seconds() - t0;
  nlohmann::ordered_json m;
  m["eval_loss" + suffix] = p.loss;
  std::vector<std::pair<std::string, double>> metrics;
  if (!opt.task.empty()) {
    metrics = glue_metrics_ordered(opt.task, p.preds, p.labels);
  } else {
    for (auto& kv : file_metrics(opt.regression, p.preds, p.labels)) metrics.push_back(kv);
  }
  for (auto& [k, v] : metrics) m["eval_" + k + suffix] = v;
  const int64_t per_step = opt.batch_size * comm.world_size();
  const int64_t steps = (int64_t(ds.examples.size()) + per_step - 1) / per_step;
  nlohmann::ordered_json speed = speed_metrics("eval", runtime, double(ds.examples.size()), steps);
  for (auto& [k, v] : speed.items()) m[k + suffix] = v;
  return m;
}

}  // namespace br
