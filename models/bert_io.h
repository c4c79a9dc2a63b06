// Hugging Face weights in and out: model.safetensors + config.json.
#pragma once
#include <string>
#include <vector>

#include "models/bert.h"

namespace br {

struct LoadReport {
  std::vector<std::string> initialized;  // parameters missing from the file, freshly initialised
  std::vector<std::string> unused;       // tensors in the file the model does not use
};

// Loads parameters from a safetensors file. Names are accepted with or without the "bert." prefix
// and with LayerNorm "gamma"/"beta" for "weight"/"bias"; the pooler and the classifier are optional
// (missing ones are initialised as HF does: normal(0, initializer_range) weights, zero biases, from
// `seed`). Any other missing tensor, or a shape mismatch, is an error naming the file and tensor.
LoadReport load_safetensors_weights(BertForSequenceClassification& model, const std::string& path,
                                    uint64_t seed);

// A model folder as transformers writes it: config.json + model.safetensors (fp32).
void save_pretrained(const BertForSequenceClassification& model, const std::string& dir);

// Builds a model from a folder holding config.json and model.safetensors (the config's labels are
// replaced by `labels` when given).
BertForSequenceClassification from_pretrained(const std::string& dir, Device device,
                                              const std::vector<std::string>& labels,
                                              uint64_t seed, LoadReport* report = nullptr);

}  // namespace br
