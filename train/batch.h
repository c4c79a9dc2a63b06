// A training or evaluation batch from tokenized examples: what the trainer feeds the model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/bert.h"
#include "train/glue.h"
#include "train/wordpiece.h"

namespace br {

// Examples `idx` (indices into `examples`, whose encodings are `encodings[idx]`) as a BertBatch on
// `device`, padded with pad_id to the longest (a no-op when pre-padded). example_ids are the
// indices themselves (dropout masks are keyed by them). Labels are set when every example is
// labeled: f32 values for regression, i32 class ids otherwise.
BertBatch collate(const std::vector<Example>& examples, const std::vector<Encoding>& encodings,
                  const std::vector<int64_t>& idx, Device device, bool regression, int32_t pad_id);

// A split ready for batching: its examples and their encodings, index for index.
struct Dataset {
  std::string name;  // "train", "validation", "validation_mismatched", "test", ...
  std::vector<Example> examples;
  std::vector<Encoding> encodings;
};
// collate over a Dataset.
BertBatch collate(const Dataset& ds, const std::vector<int64_t>& idx, Device device, bool regression,
                  int32_t pad_id);

}  // namespace br
