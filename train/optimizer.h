// AdamW over every parameter of a model, set up as HF's Trainer does (create_optimizer): two
// parameter groups, weight decay on all but biases and LayerNorm weights. The update itself is
// kernels/adamw.h; this class owns the moments and the step count, which checkpoints store.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/adamw.h"
#include "models/bert.h"
#include "train/args.h"

namespace br {

// HF's no-decay rule: a parameter whose name contains "bias" or "LayerNorm" gets no weight decay.
bool applies_weight_decay(std::string_view param_name);

// AdamW's hyper-parameters from --adam_beta1, --adam_beta2, --adam_epsilon, --weight_decay and
// --optim; the learning rate is given per step.
AdamWConfig adamw_config(const TrainingArgs& a);

// One of HF's optimizer_grouped_parameters: parameter names and the weight decay they get.
struct ParamGroup {
  std::vector<std::string> names;
  float weight_decay = 0;
};

class Optimizer {
 public:
  // fp32 moments (MemCategory::optimizer_state), zeroed, for every parameter of `model` in
  // BertWeights::named() order; no step taken yet. The model must outlive the optimizer.
  Optimizer(BertForSequenceClassification& model, const AdamWConfig& config);

  // One AdamW update of every parameter from its current gradient at learning rate lr.
  void step(double lr);
  int64_t num_steps() const { return step_; }  // updates taken: the t of the bias corrections

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<Tensor>& grads() const { return grads_; }  // names() order, e.g. for clipping
  // The two groups, decayed then not, as HF builds them (the second's weight decay is 0).
  std::vector<ParamGroup> param_groups() const;

  // optimizer.safetensors: exp_avg.<name> and exp_avg_sq.<name>, the step count in the metadata.
  void save(const std::string& path) const;
  void load(const std::string& path);

 private:
  std::vector<std::string> names_;
  std::vector<Tensor> params_, grads_, m_, v_;
  std::vector<bool> decay_;
  AdamWConfig cfg_;
  int64_t step_ = 0;
};

}  // namespace br
