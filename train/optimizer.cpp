#include "train/optimizer.h"

#include "core/error.h"
#include "core/text.h"
#include "models/safetensors.h"

namespace br {

bool applies_weight_decay(std::string_view name) {
  return name.find("bias") == std::string_view::npos && name.find("LayerNorm") == std::string_view::npos;
}

AdamWConfig adamw_config(const TrainingArgs& a) {
  AdamWConfig c;
  c.lr = 0;
  c.beta1 = float(a.adam_beta1);
  c.beta2 = float(a.adam_beta2);
  c.eps = float(a.adam_epsilon);
  c.weight_decay = float(a.weight_decay);
  c.hf_variant = a.optim == OptimizerType::adamw_hf;
  return c;
}

Optimizer::Optimizer(BertForSequenceClassification& model, const AdamWConfig& config) : cfg_(config) {
  auto p = model.params().named();
  auto g = model.grads().named();
  for (size_t i = 0; i < p.size(); ++i) {
    names_.push_back(p[i].first);
    params_.push_back(p[i].second);
    grads_.push_back(g[i].second);
    m_.push_back(Tensor::zeros(p[i].second.shape(), DType::f32, model.device(), MemCategory::optimizer_state));
    v_.push_back(Tensor::zeros(p[i].second.shape(), DType::f32, model.device(), MemCategory::optimizer_state));
    decay_.push_back(applies_weight_decay(p[i].first));
  }
}

void Optimizer::step(double lr) {
  cfg_.lr = float(lr);
  ++step_;
  adamw_step(params_, grads_, m_, v_, decay_, cfg_, step_);
}

std::vector<ParamGroup> Optimizer::param_groups() const {
  std::vector<ParamGroup> groups = {{{}, cfg_.weight_decay}, {{}, 0.0f}};
  for (size_t i = 0; i < names_.size(); ++i) groups[decay_[i] ? 0 : 1].names.push_back(names_[i]);
  return groups;
}

void Optimizer::save(const std::string& path) const {
  std::vector<std::pair<std::string, Tensor>> t;
  for (size_t i = 0; i < names_.size(); ++i) {
    t.emplace_back("exp_avg." + names_[i], m_[i]);
    t.emplace_back("exp_avg_sq." + names_[i], v_[i]);
  }
  write_safetensors(path, t, {{"format", "pt"}, {"step", std::to_string(step_)}});
}

void Optimizer::load(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  auto it = f.metadata().find("step");
  BR_CHECK(it != f.metadata().end(), "{}: no 'step' in the metadata", path);
  step_ = parse_int(it->second, path + ": metadata 'step'");
  for (size_t i = 0; i < names_.size(); ++i) {
    m_[i].copy_from(f.load_as("exp_avg." + names_[i], m_[i].shape(), DType::f32, Device::cpu, MemCategory::workspace));
    v_[i].copy_from(f.load_as("exp_avg_sq." + names_[i], v_[i].shape(), DType::f32, Device::cpu, MemCategory::workspace));
  }
}

}  // namespace br
