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

// What running a batch of n examples padded to length s costs, in tokens' worth of time:
// fixed + n·s·(1 + s / quadratic). `fixed` is each model call's own cost (its small ops, its
// threads' fork and join); s / quadratic the attention's share, which grows with the length.
struct LengthCost {
  double fixed = 145;       // tokens
  double quadratic = 256;   // the length at which attention costs as much as the rest of a token
  double operator()(int64_t n, int64_t s) const {
    return fixed + double(n) * double(s) * (1.0 + double(s) / quadratic);
  }
};
// Measured on the CPU step of all-MiniLM-L6-v2 (docs/RESULTS.md, session 27): fixed 145 tokens and
// quadratic 256 = H²/(48·N). The quadratic term is scaled so for other widths and head counts.
LengthCost length_cost(const BertConfig& c);

// A training micro-batch split into groups of similar lengths that together cost the least
// (LengthCost), each to be padded to its own longest: with per-batch padding a batch pads every
// example to its longest, so a few long examples make the short ones pay for their length too.
// `lengths` are the examples' token counts, in batch order; the result holds positions into it:
// groups longest first, each in batch order. Exact: every example's forward is independent of
// the others, so the groups' gradients, weighted by their share of the examples, sum to the
// batch's. Equal lengths (pre-padded) give one group.
std::vector<std::vector<size_t>> split_by_length(const std::vector<int64_t>& lengths,
                                                 const LengthCost& cost);

}  // namespace br
